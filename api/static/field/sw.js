// The field app's service worker (served as /field/sw.js, scope /field).
//
// It keeps the app shell (the page, its script and style, Leaflet) in Cache Storage and serves it
// when the network is gone. It never stores an answer of the API: the grid's records, personal
// data among them, live in the page's IndexedDB, which sign-out deletes. Requests other than the
// shell's are not touched here: they go to the network as the page sends them.
"use strict";
var VERSION = "__SHELL_VERSION__";
var SHELL = __SHELL_FILES__;
var CACHE = "onemap-field-shell-" + VERSION;

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(CACHE).then(function (cache) {
      return cache.addAll(SHELL.map(function (u) { return new Request(u, { cache: "reload", credentials: "omit" }); }));
    }).then(function () { return self.skipWaiting(); })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (names) {
      return Promise.all(names.filter(function (n) {
        return n.indexOf("onemap-field-") === 0 && n !== CACHE;
      }).map(function (n) { return caches.delete(n); }));
    }).then(function () { return self.clients.claim(); })
  );
});

function shellUrl(url) {
  var u = new URL(url);
  u.search = ""; u.hash = "";
  var clean = u.href;
  return SHELL.indexOf(clean) >= 0 ? clean : null;
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  if (request.headers.get("Authorization")) return;  // an API call: never cached here
  var key = shellUrl(request.url);
  if (!key) return;
  // the shell: from the cache at once, refreshed from the network behind it when online
  event.respondWith(
    caches.open(CACHE).then(function (cache) {
      return cache.match(key).then(function (cached) {
        var fresh = fetch(request).then(function (response) {
          if (response && response.ok && response.type === "basic") cache.put(key, response.clone());
          return response;
        });
        if (cached) {
          fresh.catch(function () {});
          return cached;
        }
        return fresh.catch(function () {
          return new Response("离线且未缓存 offline and not cached", { status: 503, headers: { "Content-Type": "text/plain; charset=utf-8" } });
        });
      });
    })
  );
});
