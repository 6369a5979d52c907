// 网格员移动端 The grid worker's app (/field): the map of the worker's grids, search, building →
// houses → residents, forms, and an outbox of edits that survives offline, reloads and failures.
//
// What is kept on the device, all in one IndexedDB database ("onemap-field"), deleted at sign-out:
//   meta     the session (token, user), the time of the last download, the review list;
//   records  the grid's records exactly as the records API served them to this worker (masked
//            where the API masks; a grid worker's own grids only, as the API answers);
//   outbox   every edit, from the moment it is made until /records/sync has settled it, with the
//            answer: 已生效 applied / 待审核 pending review / 冲突 conflict / 被拒绝 rejected.
// The map is GeoJSON, not vector tiles: a grid is a few hundred features, the same records are
// needed offline anyway for search, drill-down and forms, and one copy (already cut to the
// worker's grids and masked by the API) is simpler to keep right and to delete than a second,
// tiled copy. The service worker caches only the app shell, never an API answer.
// Every value reaches the page as text (textContent), never as HTML.
(function () {
  "use strict";
  var CONFIG = JSON.parse(document.getElementById("field-config").textContent);
  var ROOT = document.body.getAttribute("data-root") || "";
  var TYPES = CONFIG.types;
  var DB_NAME = "onemap-field";
  var PURPOSE = "网格员本网格走访核实 grid worker's visit in own grid";
  var LOAD_ORDER = ["buildings", "addresses", "facilities", "organisations", "houses", "residents"];
  var PERSONAL_TYPES = { residents: true, organisations: true };
  var STATUS_ZH = {
    queued: "待同步 queued", applied: "已生效 applied", pending: "待审核 pending review",
    conflict: "冲突 conflict", rejected: "被拒绝 rejected", discarded: "已采用服务器版本 server's kept"
  };
  var ACTION_ZH = { create: "新增", update: "修改", replace: "修改", delete: "删除" };
  var state = { session: null, db: null, syncing: false, again: false, netFailed: false, stack: [], map: null, layers: {} };
  var $ = function (id) { return document.getElementById(id); };

  // --- IndexedDB -----------------------------------------------------------------------------
  function openDb() {
    if (state.db) return Promise.resolve(state.db);
    return new Promise(function (resolve, reject) {
      var r = indexedDB.open(DB_NAME, 1);
      r.onupgradeneeded = function () {
        var db = r.result;
        db.createObjectStore("meta", { keyPath: "key" });
        var records = db.createObjectStore("records", { keyPath: "key" });
        records.createIndex("type", "type");
        db.createObjectStore("outbox", { keyPath: "client_id" });
      };
      r.onsuccess = function () {
        state.db = r.result;
        state.db.onversionchange = function () { state.db.close(); state.db = null; };
        resolve(state.db);
      };
      r.onerror = function () { reject(r.error); };
    });
  }
  function done(request) {
    return new Promise(function (resolve, reject) {
      request.onsuccess = function () { resolve(request.result); };
      request.onerror = function () { reject(request.error); };
    });
  }
  function store(name, mode) {
    return openDb().then(function (db) { return db.transaction(name, mode || "readonly").objectStore(name); });
  }
  function getAll(name) { return store(name).then(function (s) { return done(s.getAll()); }); }
  function getOne(name, key) { return store(name).then(function (s) { return done(s.get(key)); }); }
  function putOne(name, value) { return store(name, "readwrite").then(function (s) { return done(s.put(value)); }); }
  function delOne(name, key) { return store(name, "readwrite").then(function (s) { return done(s.delete(key)); }); }
  function byType(type) {
    return store("records").then(function (s) { return done(s.index("type").getAll(type)); });
  }
  function replaceType(type, features) {
    return openDb().then(function (db) {
      return new Promise(function (resolve, reject) {
        var t = db.transaction("records", "readwrite");
        var s = t.objectStore("records");
        s.index("type").getAllKeys(type).onsuccess = function (e) {
          e.target.result.forEach(function (k) { s.delete(k); });
          features.forEach(function (f) { s.put(asRecord(type, f)); });
        };
        t.oncomplete = function () { resolve(); };
        t.onerror = function () { reject(t.error); };
      });
    });
  }
  function asRecord(type, f) {
    return { key: type + ":" + f.id, type: type, id: f.id, version: f.properties.version, properties: f.properties, geometry: f.geometry };
  }

  // --- the network ---------------------------------------------------------------------------
  function online() { return navigator.onLine && !state.netFailed; }
  function showNet() {
    var on = online();
    document.body.setAttribute("data-online", on ? "1" : "0");
    $("net").textContent = on ? "在线 online" : "离线 offline";
  }
  window.addEventListener("online", function () { state.netFailed = false; showNet(); afterReconnect(); flushTrack(); });
  window.addEventListener("offline", showNet);
  setInterval(function () { if (state.session && navigator.onLine && (state.netFailed || queuedCount > 0)) afterReconnect(); }, 15000);
  function afterReconnect() { if (!state.session) return; sync().then(function () { if (online()) refresh(); }); }

  function api(method, path, body) {
    var headers = { Accept: "application/json" };
    if (state.session) headers.Authorization = "Bearer " + state.session.token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(ROOT + path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" })
      .then(function (r) {
        state.netFailed = false; showNet();
        return r.text().then(function (t) {
          var json = null;
          try { json = t ? JSON.parse(t) : null; } catch (e) { json = null; }
          return { status: r.status, ok: r.ok, body: json };
        });
      }, function (err) {
        state.netFailed = true; showNet();
        var e = new Error("offline"); e.offline = true; e.cause = err; throw e;
      });
  }

  // --- the API's messages in Chinese -----------------------------------------------------------
  function title(type, field) {
    var t = TYPES[type];
    var f = t && t.fields.filter(function (x) { return x.name === field; })[0];
    return (f && f.title) || CONFIG.titles[field] || field;
  }
  function titles(type, list) { return list.split(/,\s*/).map(function (f) { return title(type, f); }).join("、"); }
  var FORMAT_ZH = {
    "an 18-character GB 11643 identity number with a valid check character": "有效的18位身份证号（校验位须正确）",
    "an 11-digit mobile number starting 13–19": "以13–19开头的11位手机号",
    "an 18-character GB 32100 unified social credit code with a valid check": "有效的18位统一社会信用代码",
    "a 12-digit area code": "12位区划代码"
  };
  function zh(detail, type) {
    if (!detail) return "";
    var d = String(detail), m, rules = [
      [/^(\w+) needs (.+)$/, function (m) { return TYPES[m[1]] ? TYPES[m[1]].title + "缺少必填项：" + titles(m[1], m[2]) : null; }],
      [/^(\w+) '(.*)' is not (an? .+)$/, function (m) { return title(type, m[1]) + "「" + m[2] + "」不是" + (FORMAT_ZH[m[3]] || m[3]); }],
      [/^(.+) may not be emptied$/, function (m) { return titles(type, m[1]) + "不能清空"; }],
      [/^(\w+) may not be null$/, function (m) { return title(type, m[1]) + "不能为空"; }],
      [/^(\w+) may not be blank$/, function (m) { return title(type, m[1]) + "不能为空白"; }],
      [/^(\w+) must be text/, function (m) { return title(type, m[1]) + "必须是文字"; }],
      [/^(\w+) must be a whole number$/, function (m) { return title(type, m[1]) + "必须是整数"; }],
      [/^(\w+) must be a number$/, function (m) { return title(type, m[1]) + "必须是数字"; }],
      [/^(\w+) must be true or false$/, function (m) { return title(type, m[1]) + "必须是“是”或“否”"; }],
      [/^(\w+) is out of range$/, function (m) { return title(type, m[1]) + "超出范围"; }],
      [/^(\w+) (?:'.*' )?is not a date written YYYY-MM-DD$/, function (m) { return title(type, m[1]) + "须为日期，格式 YYYY-MM-DD"; }],
      [/^(\w+) must be a date written YYYY-MM-DD$/, function (m) { return title(type, m[1]) + "须为日期，格式 YYYY-MM-DD"; }],
      [/^(\w+) \S+ is not a plausible date$/, function (m) { return title(type, m[1]) + "日期不合理（1900年至今）"; }],
      [/^(\w+) is longer than (\d+) characters$/, function (m) { return title(type, m[1]) + "超过" + m[2] + "个字符"; }],
      [/^(\w+) contains (.+), which standard data does not use$/, function (m) { return title(type, m[1]) + "含有标准数据不使用的字符 " + m[2]; }],
      [/^(.+): (set by the server|not fields of \w+); editable fields/, function (m) { return m[1] + (m[2] === "set by the server" ? "由系统生成，不能修改" : "不是可编辑字段"); }],
      [/^(\w+) (\d+) is at version (\d+), you edited version (\d+)/, function (m) { return "该记录已被他人改为第" + m[3] + "版，您修改的是第" + m[4] + "版：请核对后再提交"; }],
      [/lies outside your grids/, function () { return "该记录不在您的网格内"; }],
      [/would lie in grid (\w+), outside your grids/, function (m) { return "位置落在网格 " + m[1] + "，不在您的网格内"; }],
      [/^(\w+) (\d+): no \w+ of that id in your grids/, function (m) { return title(type, m[1]) + " " + m[2] + " 不在您的网格内"; }],
      [/^(\w+) (\d+): there is no such/, function (m) { return title(type, m[1]) + " " + m[2] + " 不存在"; }],
      [/cannot be deleted while other records refer to it \((.+)\)/, function (m) { return "仍有其他记录引用它（" + m[1] + "），不能删除：请先移除或删除这些记录"; }],
      [/^other records still refer to this one/, function () { return "仍有其他记录引用它：请先移除或删除这些记录"; }],
      [/^a record with the same unique value exists already/, function () { return "已存在相同编码（唯一值）的记录"; }],
      [/^this person cannot be registered as given/, function () { return "该人员无法按所填信息登记：社区审核员将核查身份证号"; }],
      [/^the record breaks the rule (.+)$/, function (m) { return "记录不符合规则 " + m[1]; }],
      [/^no (\w+) record (\d+)$/, function (m) { return "记录不存在（可能已被删除）"; }],
      [/^sign in/, function () { return "请先登录"; }],
      [/may not (edit|read)/, function () { return "您的角色无权进行此操作"; }],
      [/^the position lies outside the district/, function () { return "位置不在本区范围内"; }],
      [/^a \w+ takes its position from/, function () { return "位置取自所属房屋或建筑，无需填写"; }]
    ];
    for (var i = 0; i < rules.length; i++) {
      m = d.match(rules[i][0]);
      if (m) { var z = rules[i][1](m); if (z) return z; }
    }
    return "";
  }
  function message(el, detail, type) {
    el.textContent = "";
    var z = zh(detail, type);
    el.appendChild(document.createTextNode(z || "操作未成功"));
    var small = document.createElement("small");
    small.textContent = detail;
    el.appendChild(small);
  }

  // --- the checks the API makes, made here first (the same messages, so offline too) ----------
  var ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  function validIdNumber(v) {
    if (!/^\d{17}[\dX]$/.test(v)) return false;
    var s = 0;
    for (var i = 0; i < 17; i++) s += Number(v[i]) * ID_WEIGHTS[i];
    return "10X98765432"[s % 11] === v[17];
  }
  var FORMATS = {
    id_number: [validIdNumber, "an 18-character GB 11643 identity number with a valid check character"],
    phone: [function (v) { return /^1[3-9]\d{9}$/.test(v); }, "an 11-digit mobile number starting 13–19"],
    contact_phone: [function (v) { return /^1[3-9]\d{9}$/.test(v); }, "an 11-digit mobile number starting 13–19"]
  };
  var UNSAFE = /['"`;\\<>\x00-\x1f\x7f]|--|\/\*|\*\//;
  function check(type, props, complete, original) {
    var t = TYPES[type], missing = [];
    if (complete) {
      t.required.forEach(function (f) { if (props[f] === null || props[f] === undefined) missing.push(f); });
      if (missing.length) return type + " needs " + missing.join(", ");
    } else {
      var nulled = t.required.filter(function (f) { return f in props && props[f] === null; });
      if (nulled.length) return nulled.join(", ") + " may not be emptied";
    }
    for (var i = 0; i < t.fields.length; i++) {
      var f = t.fields[i], v = props[f.name];
      if (!(f.name in props) || v === null) continue;
      if (original && original[f.name] === v) continue;  // untouched (perhaps masked) values
      if (f.kind === "int" && (typeof v !== "number" || !Number.isInteger(v))) return f.name + " must be a whole number";
      if (f.kind === "number" && (typeof v !== "number" || !isFinite(v))) return f.name + " must be a number";
      if (f.kind === "date" && (!/^\d{4}-\d{2}-\d{2}$/.test(v) || isNaN(Date.parse(v)))) return f.name + " '" + v + "' is not a date written YYYY-MM-DD";
      if (f.kind === "text") {
        if (f.max_length && v.length > f.max_length) return f.name + " is longer than " + f.max_length + " characters";
        if (!v.trim()) return f.name + " may not be blank";
        var bad = v.match(UNSAFE);
        if (bad) return f.name + " contains '" + bad[0] + "', which standard data does not use";
        if (FORMATS[f.name] && !FORMATS[f.name][0](v)) return f.name + " '" + v + "' is not " + FORMATS[f.name][1];
      }
    }
    return null;
  }

  // --- small DOM helpers -----------------------------------------------------------------------
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "onclick") e.addEventListener("click", attrs[k]);
      else if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    });
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function shown(field, value) {
    if (value === null || value === undefined || value === "") return "—";
    var z = (CONFIG.values[field] || {})[String(value)];
    return z ? z + " (" + value + ")" : String(value);
  }
  function label(type, p) {
    p = p || {};
    if (type === "buildings") return (p.name || "建筑") + " " + (p.code || "");
    if (type === "addresses") return p.full_name || p.code || "地址";
    if (type === "houses") return [p.unit_number ? p.unit_number + "单元" : "", p.room_number ? p.room_number + "室" : "", p.floor !== undefined ? "(" + p.floor + "层)" : ""].join(" ").trim();
    if (type === "residents") return (p.name || "居民") + " · " + shown("gender", p.gender);
    return p.name || TYPES[type].title;
  }

  // --- screens: sign-in and the app ------------------------------------------------------------
  function showLogin(note) {
    $("login").hidden = false; $("app").hidden = true; $("sign-out").hidden = true;
    document.body.setAttribute("data-signed-in", "0");
    $("who").textContent = "";
    if (note) $("login-error").textContent = note;
  }
  function showApp() {
    $("login").hidden = true; $("app").hidden = false; $("sign-out").hidden = false;
    document.body.setAttribute("data-signed-in", "1");
    var u = state.session.user || {};
    $("who").textContent = (u.display_name || u.username || "") + " · 网格 " + (u.grids || []).join("、");
    if (!state.map) makeMap();
    setTimeout(function () { state.map.invalidateSize(); }, 0);
  }

  $("login-form").addEventListener("submit", function (e) {
    e.preventDefault();
    $("login-error").textContent = "";
    if (!navigator.onLine) { $("login-error").textContent = "离线时无法登录：请连接网络后再试。\nSigning in needs the network."; return; }
    api("POST", "/auth/login", { username: $("login-username").value.trim(), password: $("login-password").value })
      .then(function (r) {
        if (r.ok && r.body && r.body.token) return signedIn(r.body);
        if (r.status === 404) { $("login-error").textContent = "登录服务暂不可用 the sign-in service is not available"; return; }
        var detail = (r.body && r.body.detail) || "";
        $("login-error").textContent = (r.status === 401 || r.status === 403 ? "用户名或密码错误，或账号已停用。" : "登录失败。") + "\n" + detail;
      }, function () { $("login-error").textContent = "网络不可用，无法登录 no network"; });
  });

  // what a successful sign-in does (the form above, and tests with a token made for them)
  function signedIn(session) {
    var before = state.session;
    var prior = before ? Promise.resolve(before) : getOne("meta", "session").then(function (m) { return m && m.value; });
    return prior.then(function (old) {
      // another person's data never stays on the device: wipe it before the new session
      if (old && old.user && session.user && old.user.username !== session.user.username) return wipe();
    }).then(function () {
      state.session = session;
      return putOne("meta", { key: "session", value: session });
    }).then(function () {
      showApp();
      return drawAll();
    }).then(function () { return sync(); }).then(function () { return refresh(); });
  }

  $("sign-out").addEventListener("click", function () { signOut(false); });
  function signOut(force) {
    var first = online() ? sync() : Promise.resolve();
    return first.then(function () { return getAll("outbox"); }).then(function (entries) {
      var open = entries.filter(function (x) { return x.status === "queued" || x.status === "conflict"; }).length;
      if (open && !force && !window.confirm("还有 " + open + " 条修改未同步（或有冲突未处理），退出将丢弃它们并删除本机数据。确定退出？\n" + open + " edits are not settled; signing out discards them.")) return false;
      var token = state.session && state.session.token;
      var logout = online() && token ? api("POST", "/auth/logout").catch(function () {}) : Promise.resolve();
      return logout.then(wipe).then(function () { state.session = null; showLogin(); return true; });
    });
  }
  // delete everything this app keeps about the worker and their grid: the IndexedDB database,
  // and any cache that is not the shell's (the shell holds no personal data)
  function wipe() {
    unwatch(); state.patrol = null; showPatrol();
    if (state.db) { state.db.close(); state.db = null; }
    var caches_ = window.caches ? caches.keys().then(function (names) {
      return Promise.all(names.filter(function (n) { return n.indexOf("onemap-field-shell-") !== 0; }).map(function (n) { return caches.delete(n); }));
    }) : Promise.resolve();
    return caches_.then(function () {
      return new Promise(function (resolve) {
        var r = indexedDB.deleteDatabase(DB_NAME);
        r.onsuccess = r.onerror = r.onblocked = function () { resolve(); };
      });
    }).then(function () {
      state.stack = []; $("sheet").hidden = true;
      Object.keys(state.layers).forEach(function (k) { state.layers[k].clearLayers(); });
      ["outbox", "reviews", "search-results"].forEach(function (id) { $(id).textContent = ""; });
      queuedCount = 0; $("outbox-count").textContent = "";
      document.body.setAttribute("data-records", "0");
    });
  }

  // --- downloading the grid --------------------------------------------------------------------
  function refresh() {
    if (!state.session || !online()) return Promise.resolve();
    document.body.setAttribute("data-refreshing", "1");
    var chain = Promise.resolve();
    LOAD_ORDER.forEach(function (type) {
      chain = chain.then(function () { return download(type); });
    });
    return chain.then(function () {
      return putOne("meta", { key: "loaded_at", value: new Date().toISOString() });
    }).then(drawAll).then(loadReviews).catch(function (e) {
      if (!e.offline) $("sync-note").textContent = "下载网格数据失败 could not download: " + (e.message || e);
    }).then(function () { document.body.setAttribute("data-refreshing", "0"); });
  }
  function download(type) {
    var all = [], limit = 5000;
    function page(offset) {
      var q = "/records/" + type + "?limit=" + limit + "&offset=" + offset + (PERSONAL_TYPES[type] ? "&purpose=" + encodeURIComponent(PURPOSE) : "");
      return api("GET", q).then(function (r) {
        if (r.status === 401) { needLogin(); throw new Error("401"); }
        if (!r.ok) throw new Error(type + ": " + ((r.body && r.body.detail) || r.status));
        all = all.concat(r.body.features);
        if (r.body.features.length === limit) return page(offset + limit);
      });
    }
    return page(0).then(function () { return replaceType(type, all); });
  }
  function fetchOne(type, id) {
    var q = "/records/" + type + "/" + id + (PERSONAL_TYPES[type] ? "?purpose=" + encodeURIComponent(PURPOSE) : "");
    return api("GET", q).then(function (r) {
      if (r.ok) return putOne("records", asRecord(type, r.body));
      if (r.status === 404) return delOne("records", type + ":" + id);
    });
  }
  function needLogin() {
    showLogin("登录已过期，请重新登录；未同步的修改仍保存在本机。\nYour session has expired: sign in again (your queued edits are kept).");
    $("app").hidden = true;
  }

  // --- the map ---------------------------------------------------------------------------------
  function makeMap() {
    var map = L.map("map", { preferCanvas: true, attributionControl: false, zoomControl: true });
    state.map = map;
    window.onemapFieldMap = map;
    L.control.scale({ imperial: false }).addTo(map);
    map.setView([31.65, 119.03], 13);
    state.layers.buildings = L.geoJSON(null, {
      style: { color: "#0b4f6c", weight: 1, fillColor: "#9fb3c8", fillOpacity: 0.45 },
      onEachFeature: function (f, l) { l.on("click", function () { openRecord("buildings", f.id); }); }
    }).addTo(map);
    function points(colour, type, radius) {
      return L.geoJSON(null, {
        pointToLayer: function (f, ll) { return L.circleMarker(ll, { radius: radius, color: colour, weight: 1, fillColor: colour, fillOpacity: 0.8 }); },
        onEachFeature: function (f, l) { l.on("click", function () { openRecord(type, f.id); }); }
      }).addTo(map);
    }
    state.layers.addresses = points("#52606d", "addresses", 3);
    state.layers.organisations = points("#b45309", "organisations", 5);
    state.layers.facilities = points("#15803d", "facilities", 6);
    state.layers.me = L.layerGroup().addTo(map);
    $("locate").addEventListener("click", function () { locate(true); });
    locate(false);
  }
  function locate(centre) {
    if (!navigator.geolocation) return;
    navigator.geolocation.getCurrentPosition(function (p) {
      var ll = [p.coords.latitude, p.coords.longitude];
      state.position = ll;
      state.layers.me.clearLayers();
      L.circle(ll, { radius: Math.min(p.coords.accuracy || 20, 500), color: "#1d4ed8", weight: 1, fillOpacity: 0.1, interactive: false }).addTo(state.layers.me);
      L.circleMarker(ll, { radius: 7, color: "#fff", weight: 2, fillColor: "#1d4ed8", fillOpacity: 1 }).addTo(state.layers.me);
      document.body.setAttribute("data-located", "1");
      if (centre) state.map.setView(ll, Math.max(state.map.getZoom(), 17));
    }, function () {
      document.body.setAttribute("data-located", "0");
      if (centre) $("map-note").textContent = "无法获取位置（请允许定位）could not get your position";
    }, { enableHighAccuracy: true, timeout: 10000, maximumAge: 30000 });
  }
  function drawAll() {
    if (!state.map) return Promise.resolve();
    var types = ["buildings", "addresses", "organisations", "facilities"], bounds = null, count = 0;
    return Promise.all(types.map(byType)).then(function (lists) {
      types.forEach(function (type, i) {
        var layer = state.layers[type];
        layer.clearLayers();
        var fc = { type: "FeatureCollection", features: lists[i].filter(function (r) { return r.geometry; }).map(function (r) {
          return { type: "Feature", id: r.id, geometry: r.geometry, properties: {} };
        }) };
        count += fc.features.length;
        layer.addData(fc);
        if (type === "buildings" && fc.features.length) bounds = layer.getBounds();
      });
      if (bounds && !state.fitted) { state.map.fitBounds(bounds, { padding: [10, 10] }); state.fitted = true; }
      return store("records").then(function (s) { return done(s.count()); });
    }).then(function (n) {
      document.body.setAttribute("data-records", String(n));
      document.body.setAttribute("data-map-features", String(count));
    });
  }

  // --- tabs, the sheet and its stack of views --------------------------------------------------
  document.querySelectorAll("#tabs button").forEach(function (b) {
    b.addEventListener("click", function () { tab(b.getAttribute("data-tab")); });
  });
  function tab(name) {
    document.querySelectorAll("#tabs button").forEach(function (b) { b.classList.toggle("on", b.getAttribute("data-tab") === name); });
    ["map", "search", "outbox", "reviews"].forEach(function (t) { $("tab-" + t).hidden = t !== name; });
    closeSheet();
    document.body.setAttribute("data-tab", name);
    if (name === "map") setTimeout(function () { state.map.invalidateSize(); }, 0);
    if (name === "outbox") renderOutbox();
    if (name === "reviews") { renderReviews(); loadReviews(); }
  }
  function openView(view) { state.stack.push(view); return render(); }
  function render() {
    var view = state.stack[state.stack.length - 1];
    if (!view) { closeSheet(); return Promise.resolve(); }
    $("sheet").hidden = false;
    $("sheet-back").hidden = state.stack.length < 2;
    var body = $("sheet-body");
    body.textContent = "";
    body.removeAttribute("data-view");
    return view(body).then(function () { body.setAttribute("data-view", "ready"); });
  }
  function closeSheet() { state.stack = []; $("sheet").hidden = true; }
  $("sheet-close").addEventListener("click", closeSheet);
  $("sheet-back").addEventListener("click", function () { state.stack.pop(); render(); });
  function openRecord(type, id) {
    if (type === "buildings") return openView(buildingView(id));
    if (type === "houses") return openView(houseView(id));
    if (type === "addresses") return openView(addressView(id));
    return openView(recordView(type, id));
  }

  // a record as the worker sees it now: the server's copy with the worker's unsent edit laid over
  function current(type, id) {
    return Promise.all([getOne("records", type + ":" + id), getAll("outbox")]).then(function (r) {
      var rec = r[0], waiting = r[1].filter(function (e) { return e.type === type && e.id === id && (e.status === "queued" || e.status === "conflict"); });
      return { record: rec, waiting: waiting };
    });
  }
  function fieldList(type, props, pending) {
    var dl = el("dl", { "class": "fields" });
    TYPES[type].fields.forEach(function (f) {
      if (!(f.name in props) || /^verified_/.test(f.name)) return;
      var value = pending && f.name in pending ? pending[f.name] : props[f.name];
      dl.appendChild(el("dt", null, f.title));
      dl.appendChild(el("dd", { "data-field": f.name }, shown(f.name, value) + (pending && f.name in pending ? " （待同步）" : "")));
    });
    return dl;
  }
  function waitingNotice(body, waiting) {
    waiting.forEach(function (w) {
      var p = el("p", { "class": "notice" });
      p.appendChild(el("span", { "class": "status " + w.status }, STATUS_ZH[w.status]));
      p.appendChild(document.createTextNode(ACTION_ZH[w.action] + "：" + (w.status === "conflict" ? "与服务器版本冲突，请在“同步”中处理" : "联网后自动同步")));
      body.appendChild(p);
    });
  }
  function versionLine(rec) {
    return el("p", { "class": "hint", id: "record-version", "data-version": rec.version }, "版本 Version v" + rec.version + " · 网格 " + (rec.properties.grid_code || ""));
  }
  function missing(body, type) {
    $("sheet-title").textContent = TYPES[type].title;
    body.appendChild(el("p", { "class": "notice" }, "本机没有这条记录（可能已删除，或不在您的网格内）。Not on this device."));
  }

  function buildingView(id) {
    return function (body) {
      return Promise.all([current("buildings", id), byType("houses"), byType("addresses"), getAll("outbox")]).then(function (r) {
        var b = r[0].record;
        if (!b) return missing(body, "buildings");
        $("sheet-title").textContent = "建筑 " + (b.properties.code || id);
        body.setAttribute("data-type", "buildings"); body.setAttribute("data-id", id);
        body.appendChild(versionLine(b));
        body.appendChild(fieldList("buildings", b.properties));
        body.appendChild(verifyBlock("buildings", b));
        var addrs = r[2].filter(function (a) { return a.properties.building_id === id; });
        if (addrs.length) {
          body.appendChild(el("h3", null, "地址 Addresses"));
          var ul = el("ul", { "class": "list" });
          addrs.forEach(function (a) { ul.appendChild(el("li", null, a.properties.full_name)); });
          body.appendChild(ul);
        }
        var houses = r[1].filter(function (h) { return h.properties.building_id === id; });
        houses.sort(function (x, y) { return (x.properties.floor - y.properties.floor) || String(x.properties.room_number).localeCompare(String(y.properties.room_number)); });
        body.appendChild(el("h3", null, "房屋 Houses（" + houses.length + "）"));
        var list = el("ul", { "class": "list", id: "house-list" });
        houses.forEach(function (h) {
          list.appendChild(el("li", { "class": "go", "data-house": h.id, onclick: function () { openView(houseView(h.id)); } }, label("houses", h.properties) + " · " + shown("use", h.properties.use)));
        });
        r[3].filter(function (e) { return e.type === "houses" && e.action === "create" && e.properties.building_id === id && e.status === "queued"; }).forEach(function (e) {
          list.appendChild(el("li", null, label("houses", e.properties) + " （新增，待同步）"));
        });
        body.appendChild(list);
        var actions = el("div", { "class": "actions" });
        actions.appendChild(el("button", { type: "button", "class": "primary", id: "add-house", onclick: function () { openView(formView("houses", null, { building_id: id })); } }, "添加房屋 Add house"));
        body.appendChild(actions);
      });
    };
  }
  function houseView(id) {
    return function (body) {
      return Promise.all([current("houses", id), byType("residents"), getAll("outbox")]).then(function (r) {
        var h = r[0].record;
        if (!h) return missing(body, "houses");
        $("sheet-title").textContent = "房屋 " + label("houses", h.properties);
        body.setAttribute("data-type", "houses"); body.setAttribute("data-id", id);
        body.appendChild(versionLine(h));
        waitingNotice(body, r[0].waiting);
        body.appendChild(fieldList("houses", h.properties));
        body.appendChild(verifyBlock("houses", h));
        body.appendChild(recordActions("houses", h));
        var people = r[1].filter(function (p) { return p.properties.house_id === id; });
        body.appendChild(el("h3", null, "居民 Residents（" + people.length + "）"));
        var list = el("ul", { "class": "list", id: "resident-list" });
        people.forEach(function (p) {
          list.appendChild(el("li", { "class": "go", "data-resident": p.id, onclick: function () { openView(recordView("residents", p.id)); } }, label("residents", p.properties) + " · " + shown("residence_type", p.properties.residence_type)));
        });
        r[2].filter(function (e) { return e.type === "residents" && e.action === "create" && e.properties.house_id === id && e.status === "queued"; }).forEach(function (e) {
          list.appendChild(el("li", null, label("residents", e.properties) + " （新增，待同步）"));
        });
        body.appendChild(list);
        var actions = el("div", { "class": "actions" });
        actions.appendChild(el("button", { type: "button", "class": "primary", id: "add-resident", onclick: function () { openView(formView("residents", null, { house_id: id })); } }, "添加居民 Add resident"));
        body.appendChild(actions);
      });
    };
  }
  function addressView(id) {
    return function (body) {
      return current("addresses", id).then(function (r) {
        if (!r.record) return missing(body, "addresses");
        $("sheet-title").textContent = "地址";
        body.setAttribute("data-type", "addresses"); body.setAttribute("data-id", id);
        body.appendChild(versionLine(r.record));
        body.appendChild(fieldList("addresses", r.record.properties));
        body.appendChild(verifyBlock("addresses", r.record));
        if (r.record.properties.building_id) {
          body.appendChild(el("button", { type: "button", onclick: function () { openView(buildingView(r.record.properties.building_id)); } }, "所在建筑 Building ›"));
        }
      });
    };
  }
  function recordView(type, id) {
    return function (body) {
      return current(type, id).then(function (r) {
        if (!r.record) return missing(body, type);
        var pending = {};
        r.waiting.forEach(function (w) { Object.assign(pending, w.properties || {}); });
        $("sheet-title").textContent = TYPES[type].title + " " + label(type, r.record.properties);
        body.setAttribute("data-type", type); body.setAttribute("data-id", id);
        body.appendChild(versionLine(r.record));
        waitingNotice(body, r.waiting);
        body.appendChild(fieldList(type, r.record.properties, pending));
        body.appendChild(verifyBlock(type, r.record));
        body.appendChild(recordActions(type, r.record));
        if (type === "residents" && r.record.properties.house_id) {
          body.appendChild(el("button", { type: "button", "class": "link", onclick: function () { openView(houseView(r.record.properties.house_id)); } }, "所住房屋 House ›"));
        }
      });
    };
  }
  function recordActions(type, rec) {
    var actions = el("div", { "class": "actions" });
    actions.appendChild(el("button", { type: "button", "class": "primary", id: "edit-record", onclick: function () { openView(formView(type, rec.id)); } }, "编辑 Edit"));
    actions.appendChild(el("button", { type: "button", "class": "danger", id: "delete-record", onclick: function () {
      if (!window.confirm("确定删除这条" + TYPES[type].title + "记录？Delete this record?")) return;
      enqueue({ type: type, action: "delete", id: rec.id, base_version: rec.version, label: label(type, rec.properties) }).then(function () {
        state.stack.pop(); render();
      });
    } }, "删除 Delete"));
    return actions;
  }

  // --- forms ------------------------------------------------------------------------------------
  function formView(type, id, parent) {
    return function (body) {
      var t = TYPES[type];
      var load = id ? current(type, id) : Promise.resolve({ record: null, waiting: [] });
      return load.then(function (r) {
        if (id && !r.record) return missing(body, type);
        var props = r.record ? Object.assign({}, r.record.properties) : {};
        r.waiting.forEach(function (w) { Object.assign(props, w.properties || {}); });
        $("sheet-title").textContent = (id ? "编辑 " : "新增 ") + t.title;
        var form = el("form", { id: "record-form", "data-type": type, novalidate: "novalidate" });
        t.fields.forEach(function (f) {
          if (!f.in_form) return;
          var lab = el("label", null, f.title + (f.required ? " *" : ""));
          var input;
          if (f.choices.length) {
            input = el("select", { name: f.name });
            if (!f.required || !id) input.appendChild(el("option", { value: "" }, "—"));
            f.choices.forEach(function (c) { input.appendChild(el("option", { value: c }, shown(f.name, c))); });
          } else if (f.kind === "bool") {
            input = el("select", { name: f.name });
            [["", "—"], ["true", "是"], ["false", "否"]].forEach(function (o) { input.appendChild(el("option", { value: o[0] }, o[1])); });
          } else {
            input = el("input", { name: f.name, type: f.kind === "date" ? "text" : "text", inputmode: f.kind === "int" || f.kind === "number" ? "decimal" : null, placeholder: f.kind === "date" ? "YYYY-MM-DD" : null });
          }
          var v = props[f.name];
          if (f.kind === "list") v = (v || []).join("，");
          input.value = v === null || v === undefined ? "" : String(v);
          if (f.personal && id && typeof v === "string" && v.indexOf("*") >= 0) lab.appendChild(el("small", null, "（已遮蔽，不改则保持原值）"));
          lab.appendChild(input);
          form.appendChild(lab);
        });
        var point = null;
        if (t.geometry === "Point" && !id) {
          point = state.position ? [state.position[1], state.position[0]] : (function (c) { return [c.lng, c.lat]; })(state.map.getCenter());
          form.appendChild(el("p", { "class": "hint" }, "位置：" + (state.position ? "我的位置" : "地图中心") + " " + point[0].toFixed(6) + ", " + point[1].toFixed(6)));
        }
        var err = el("p", { "class": "error", id: "form-error", role: "alert" });
        form.appendChild(err);
        var actions = el("div", { "class": "actions" });
        actions.appendChild(el("button", { type: "submit", "class": "primary", id: "save-record" }, "保存 Save"));
        form.appendChild(actions);
        form.addEventListener("submit", function (e) {
          e.preventDefault();
          var sent = {}, original = r.record ? r.record.properties : {};
          t.fields.forEach(function (f) {
            if (!f.in_form) return;
            var raw = form.elements[f.name].value.trim(), v;
            if (raw === "") v = null;
            else if (f.kind === "int") v = /^-?\d+$/.test(raw) ? parseInt(raw, 10) : raw;
            else if (f.kind === "number") v = isFinite(Number(raw)) ? Number(raw) : raw;
            else if (f.kind === "bool") v = raw === "true";
            else if (f.kind === "list") v = raw.split(/[,，]\s*/).filter(Boolean);
            else v = raw;
            if (id) {
              var before = props[f.name];
              var same = JSON.stringify(before === undefined ? null : (f.kind === "number" && before !== null ? Number(before) : before)) === JSON.stringify(v);
              if (!same) sent[f.name] = v;
            } else if (v !== null) sent[f.name] = v;
          });
          Object.assign(sent, parent || {});
          if (id && !Object.keys(sent).length) { err.textContent = "没有修改 Nothing changed"; return; }
          var problem = check(type, sent, !id, id ? original : null);
          if (problem) { message(err, problem, type); return; }
          var edit = { type: type, action: id ? "update" : "create", id: id || null, base_version: r.record ? r.record.version : null, properties: sent, label: label(type, Object.assign({}, props, sent)) };
          if (point) edit.geometry = { type: "Point", coordinates: point };
          enqueue(edit).then(function () {
            state.stack.pop();
            return render();
          });
        });
        body.appendChild(form);
      });
    };
  }

  // --- the outbox -------------------------------------------------------------------------------
  var queuedCount = 0;
  function newId() {
    var u = (state.session && state.session.user && state.session.user.username) || "w";
    var rnd = (window.crypto && crypto.getRandomValues) ? Array.prototype.map.call(crypto.getRandomValues(new Uint8Array(8)), function (b) { return (b + 256).toString(16).slice(1); }).join("") : String(Math.random()).slice(2);
    return (u + "-" + Date.now().toString(36) + "-" + rnd).slice(0, 100);
  }
  var seq = 0;
  function enqueue(edit) {
    return getAll("outbox").then(function (entries) {
      var same = edit.id && entries.filter(function (e) { return e.type === edit.type && e.id === edit.id && e.status === "queued"; })[0];
      var entry;
      if (same && same.action !== "delete") {
        // a second edit of a record not yet sent: one edit, from the same base version
        entry = same;
        if (edit.action === "delete") { entry.action = "delete"; entry.properties = null; }
        else entry.properties = Object.assign({}, entry.properties || {}, edit.properties || {});
        entry.label = edit.label || entry.label;
        entry.changed_at = new Date().toISOString();
      } else {
        entry = Object.assign({ client_id: newId(), seq: Date.now() * 1000 + (seq++ % 1000), status: "queued", made_at: new Date().toISOString() }, edit);
      }
      return putOne("outbox", entry);
    }).then(function () {
      renderOutbox();
      if (online()) sync();
    });
  }
  function wire(e) {
    var w = { client_id: e.client_id, type: e.type, action: e.action };
    if (e.id) w.id = e.id;
    if (e.base_version) w.base_version = e.base_version;
    if (e.properties && e.action !== "delete") w.properties = e.properties;
    if (e.geometry) w.geometry = e.geometry;
    return w;
  }
  function sync() {
    if (!state.session) return Promise.resolve();
    if (state.syncing) { state.again = true; return state.syncing; }
    if (!navigator.onLine) { showNet(); return Promise.resolve(); }
    document.body.setAttribute("data-syncing", "1");
    state.syncing = getAll("outbox").then(function (entries) {
      var queued = entries.filter(function (e) { return e.status === "queued"; }).sort(function (a, b) { return a.seq - b.seq; }).slice(0, 500);
      if (!queued.length) return;
      return api("POST", "/records/sync", { edits: queued.map(wire) }).then(function (r) {
        if (r.status === 401) { needLogin(); return; }
        if (!r.ok) { message($("sync-note"), (r.body && r.body.detail) || ("HTTP " + r.status)); return; }
        var byId = {};
        queued.forEach(function (e) { byId[e.client_id] = e; });
        var chain = Promise.resolve();
        r.body.results.forEach(function (res) {
          var e = byId[res.client_id];
          if (!e) return;
          e.status = res.status;
          e.result = res;
          e.settled_at = new Date().toISOString();
          chain = chain.then(function () { return putOne("outbox", e); }).then(function () {
            if (res.status !== "applied") return;
            if (e.action === "delete") return delOne("records", e.type + ":" + e.id);
            return fetchOne(e.type, res.id || e.id).catch(function () {});
          });
        });
        return chain.then(function () {
          $("sync-note").textContent = "已同步 " + new Date().toLocaleTimeString("zh-CN") + " synced";
          return drawAll();
        });
      });
    }).catch(function (e) {
      if (!e.offline) $("sync-note").textContent = "同步失败，稍后重试 sync failed: " + (e.message || e);
    }).then(function () {
      state.syncing = false;
      document.body.setAttribute("data-syncing", "0");
      return renderOutbox().then(function () { return state.stack.length ? render() : null; });
    }).then(function () {
      if (state.again) { state.again = false; return sync(); }
    });
    return state.syncing;
  }
  $("sync-now").addEventListener("click", function () { state.netFailed = false; sync().then(refresh); });
  $("clear-done").addEventListener("click", function () {
    getAll("outbox").then(function (entries) {
      return Promise.all(entries.filter(function (e) { return e.status === "applied" || e.status === "discarded"; }).map(function (e) { return delOne("outbox", e.client_id); }));
    }).then(renderOutbox);
  });

  function renderOutbox() {
    if (!state.session) return Promise.resolve();
    return getAll("outbox").then(function (entries) {
      entries.sort(function (a, b) { return b.seq - a.seq; });
      var counts = {};
      entries.forEach(function (e) { counts[e.status] = (counts[e.status] || 0) + 1; });
      queuedCount = (counts.queued || 0);
      var open = queuedCount + (counts.conflict || 0);
      $("outbox-count").textContent = open ? String(open) : "";
      ["queued", "applied", "pending", "conflict", "rejected", "discarded"].forEach(function (s) {
        document.body.setAttribute("data-outbox-" + s, String(counts[s] || 0));
      });
      var ul = $("outbox");
      ul.textContent = "";
      if (!entries.length) ul.appendChild(el("li", { "class": "hint" }, "没有修改记录 No edits yet"));
      entries.forEach(function (e) {
        var li = el("li", { "data-client-id": e.client_id, "data-status": e.status, "data-record": e.type + ":" + (e.id || "new") });
        li.appendChild(el("span", { "class": "status " + e.status }, STATUS_ZH[e.status] || e.status));
        li.appendChild(document.createTextNode(ACTION_ZH[e.action] + TYPES[e.type].title + "：" + (e.label || "") + (e.id ? " #" + e.id : "")));
        var sub = el("span", { "class": "sub" });
        var res = e.result || {};
        if (e.status === "applied") sub.textContent = res.version ? "服务器版本 v" + res.version : "已删除";
        if (e.status === "pending") sub.textContent = "等待社区审核（审核单 " + res.review_id + "）";
        if (e.status === "queued") sub.textContent = online() ? "正在发送…" : "离线，联网后自动发送";
        if (e.status === "discarded") sub.textContent = "已采用服务器版本 v" + (res.server_version || "");
        li.appendChild(sub);
        if (e.status === "rejected") {
          var why = el("p", { "class": "error" });
          message(why, res.reason, e.type);
          li.appendChild(why);
        }
        if (e.status === "conflict") {
          li.appendChild(el("button", { type: "button", "class": "primary", "data-open-conflict": e.client_id, onclick: function () { openView(conflictView(e.client_id)); } }, "查看冲突 Resolve"));
        }
        ul.appendChild(li);
      });
    });
  }

  function conflictView(clientId) {
    return function (body) {
      return getOne("outbox", clientId).then(function (e) {
        if (!e || e.status !== "conflict") {
          $("sheet-title").textContent = "冲突";
          body.appendChild(el("p", { "class": "notice" }, "该冲突已处理 Already resolved."));
          return;
        }
        var res = e.result;
        $("sheet-title").textContent = "冲突：" + TYPES[e.type].title + " #" + e.id;
        body.setAttribute("data-conflict", clientId);
        body.appendChild(el("p", { "class": "notice" }, "您离线修改期间，服务器上的记录已被改为第 " + res.server_version + " 版（您修改的是第 " + e.base_version + " 版）。请逐项核对后选择。"));
        var table = el("table", { "class": "diff", id: "conflict-diff" });
        var head = table.createTHead().insertRow();
        ["字段", "我的 Mine", "服务器 Server"].forEach(function (h) { head.appendChild(el("th", null, h)); });
        var tb = table.createTBody();
        Object.keys(res.diff || {}).forEach(function (field) {
          if (field === "geometry") return;
          var d = res.diff[field];
          var mine = field in (e.properties || {}) ? d.yours : (d.base !== undefined ? d.base : d.yours);
          var row = tb.insertRow();
          row.setAttribute("data-field", field);
          if (JSON.stringify(mine) !== JSON.stringify(d.server)) row.className = "differs";
          row.appendChild(el("td", null, title(e.type, field)));
          row.appendChild(el("td", { "class": "mine" }, shown(field, mine)));
          row.appendChild(el("td", { "class": "server" }, shown(field, d.server)));
        });
        body.appendChild(table);
        var actions = el("div", { "class": "actions" });
        actions.appendChild(el("button", { type: "button", "class": "primary", id: "keep-mine", onclick: function () { keepMine(clientId); } }, "保留我的 Keep mine"));
        actions.appendChild(el("button", { type: "button", id: "take-server", onclick: function () { takeServer(clientId); } }, "采用服务器的 Take the server's"));
        body.appendChild(actions);
      });
    };
  }
  // keep mine: the same change, sent again on the server's version (under a new client id: the
  // server keeps its answer to the old one)
  function keepMine(clientId) {
    return getOne("outbox", clientId).then(function (e) {
      var again = Object.assign({}, e, { client_id: newId(), base_version: e.result.server_version, status: "queued", previous: { client_id: e.client_id, result: e.result } });
      delete again.result;
      return delOne("outbox", clientId).then(function () { return putOne("outbox", again); });
    }).then(function () {
      state.stack.pop(); render();
      renderOutbox();
      return sync();
    });
  }
  function takeServer(clientId) {
    return getOne("outbox", clientId).then(function (e) {
      e.status = "discarded";
      return putOne("outbox", e).then(function () { return online() ? fetchOne(e.type, e.id).catch(function () {}) : null; });
    }).then(function () { state.stack.pop(); render(); return renderOutbox(); }).then(drawAll);
  }

  // --- reviews ----------------------------------------------------------------------------------
  function loadReviews() {
    if (!state.session || !online()) return Promise.resolve();
    return api("GET", "/records/reviews?status=pending&limit=200").then(function (r) {
      if (r.ok) return putOne("meta", { key: "reviews", value: r.body.reviews, at: new Date().toISOString() });
    }).then(renderReviews).catch(function () {});
  }
  $("reload-reviews").addEventListener("click", loadReviews);
  function renderReviews() {
    if (!state.session) return Promise.resolve();
    return getOne("meta", "reviews").then(function (m) {
      var ul = $("reviews"), list = (m && m.value) || [];
      ul.textContent = "";
      $("reviews-note").textContent = m ? "更新于 " + new Date(m.at).toLocaleString("zh-CN") + (online() ? "" : "（离线，显示上次结果）") : "尚未下载 not loaded yet";
      if (!list.length) ul.appendChild(el("li", { "class": "hint" }, "没有待审核的修改 Nothing waiting for review"));
      list.forEach(function (rv) {
        var li = el("li", { "data-review": rv.id });
        li.appendChild(el("span", { "class": "status pending" }, "待审核"));
        var p = (rv.payload && rv.payload.properties) || {};
        li.appendChild(document.createTextNode(ACTION_ZH[rv.action] + (TYPES[rv.record_type] ? TYPES[rv.record_type].title : rv.record_type) + (rv.record_id ? " #" + rv.record_id : "") + "：" + label(rv.record_type, p)));
        li.appendChild(el("span", { "class": "sub" }, "提交于 " + new Date(rv.submitted_at).toLocaleString("zh-CN") + " · 审核单 " + rv.id));
        ul.appendChild(li);
      });
      document.body.setAttribute("data-reviews", String(list.length));
    });
  }

  // --- search (the local copy: works offline; the copy is the grid as the server last sent it) --
  $("search-form").addEventListener("submit", function (e) {
    e.preventDefault();
    search($("search-input").value.trim());
  });
  function search(q) {
    var ul = $("search-results");
    ul.textContent = "";
    ul.removeAttribute("data-searched");
    if (!q) return Promise.resolve();
    var needle = q.toLowerCase();
    return Promise.all([byType("buildings"), byType("addresses")]).then(function (r) {
      var hits = [];
      r[0].forEach(function (b) {
        var p = b.properties;
        if (String(p.code || "").indexOf(q) >= 0 || String(p.name || "").toLowerCase().indexOf(needle) >= 0) hits.push({ type: "buildings", id: b.id, text: "建筑 " + p.code + (p.name ? " " + p.name : ""), sub: shown("use", p.use) + " · " + (p.floors || "?") + "层" });
      });
      r[1].forEach(function (a) {
        var p = a.properties;
        if (String(p.full_name || "").toLowerCase().indexOf(needle) >= 0 || String(p.code || "").indexOf(q) >= 0) {
          hits.push({ type: p.building_id ? "buildings" : "addresses", id: p.building_id || a.id, text: p.full_name, sub: "地址 " + (p.code || "") });
        }
      });
      $("search-note").textContent = hits.length ? "找到 " + hits.length + " 条（本机数据" + (online() ? "，已与服务器同步" : "，离线") + "）" : "没有找到 Nothing found" + (online() ? "" : "（离线：仅搜索本机数据）");
      hits.slice(0, 100).forEach(function (h) {
        var li = el("li", { "class": "go", "data-type": h.type, "data-id": h.id, onclick: function () { openRecord(h.type, h.id); } }, h.text);
        li.appendChild(el("span", { "class": "sub" }, h.sub));
        ul.appendChild(li);
      });
      ul.setAttribute("data-searched", String(hits.length));
    });
  }

  // --- patrols (巡查) ---------------------------------------------------------------------------
  // A patrol starts and ends on the server (POST /field/patrols, …/end). While it runs, the
  // browser's positions (watchPosition) are kept in IndexedDB (meta "patrol": the patrol and the
  // points not yet sent) and sent in batches to /field/patrols/{id}/track: offline they wait on
  // the device and go when the network is back (every 15 s, on reconnecting, and before the end).
  // Each point's time is the position's, never before the patrol's start nor before the point
  // before it (the server checks both). Verifying (核实), reporting a hazard, starting and ending
  // need the network; the screen says so when there is none.
  var BATCH = 5, patrolWatch = null;
  var HAZARD_CATEGORIES = [["fire", "消防"], ["gas", "燃气"], ["structural", "房屋结构"], ["flood", "防汛"], ["traffic", "交通"], ["production", "安全生产"], ["electrical", "用电"]];
  var LEVELS = [["4", "4级 一般（默认）"], ["3", "3级"], ["2", "2级"], ["1", "1级 最严重"]];
  function patrolSave() {
    if (!state.patrol) return delOne("meta", "patrol").catch(function () {});
    return putOne("meta", { key: "patrol", value: state.patrol });
  }
  function patrolNote(text) { $("patrol-note").textContent = text || ""; }
  function showPatrol() {
    var p = state.patrol, bar = $("patrol-bar");
    bar.setAttribute("data-state", p ? "running" : "idle");
    $("patrol-start").hidden = !!p;
    $("patrol-status").hidden = $("patrol-hazard").hidden = $("patrol-end").hidden = !p;
    document.body.setAttribute("data-patrol", p ? String(p.id) : "");
    document.body.setAttribute("data-patrol-points", p ? String(p.recorded) : "0");
    document.body.setAttribute("data-patrol-pending", p ? String(p.pending.length) : "0");
    document.body.setAttribute("data-patrol-sent", p ? String(p.sent || 0) : "0");
    if (!p) return;
    $("patrol-status").textContent = "巡查中 · 轨迹 " + ((p.sent || 0) + p.pending.length) + " 点" +
      (p.pending.length ? "（" + p.pending.length + " 待上传" + (online() ? "" : "，离线") + "）" : "") +
      " · 核实 " + p.verified + " · 隐患 " + p.hazards;
  }
  function begin(s) {
    state.patrol = {
      id: s.id, started_at: s.started_at, floor: Math.max(Date.parse(s.started_at) + 1, s.track_points ? Date.now() : 0),
      pending: [], last: null, recorded: 0, sent: s.track_points || 0,
      verified: (s.verified || []).length, hazards: (s.hazards || []).length
    };
    return patrolSave().then(function () { patrolNote(""); watch(); showPatrol(); });
  }
  function startPatrol() {
    if (state.patrol) return Promise.resolve();
    if (!online()) { patrolNote("开始巡查需要联网 Starting a patrol needs the network."); return Promise.resolve(); }
    $("patrol-start").disabled = true;
    return api("POST", "/field/patrols").then(function (r) {
      var detail = (r.body && r.body.detail) || "";
      var running = r.status === 409 && /patrol (\d+) is still running/.exec(detail);
      if (running) {  // a patrol left running (another device, a cleared browser): carry on with it
        return api("GET", "/field/patrols/" + running[1]).then(function (g) { if (g.ok) return begin(g.body); });
      }
      if (r.status === 401) { needLogin(); return; }
      if (!r.ok) { message($("patrol-note"), detail || "HTTP " + r.status); return; }
      return begin(r.body);
    }).catch(function () { patrolNote("网络不可用 no network"); }).then(function () { $("patrol-start").disabled = false; });
  }
  function watch() {
    if (patrolWatch !== null) return;
    if (!navigator.geolocation) { patrolNote("本机无法定位：轨迹不能记录 no geolocation"); return; }
    patrolWatch = navigator.geolocation.watchPosition(onPosition, function (e) {
      // a lost fix is said until the next position clears it; the watch keeps running
      document.body.setAttribute("data-patrol-gps", "error");
      patrolNote(e && e.code === 1 ? "请允许定位，否则无法记录轨迹 allow location to record the track" : "暂时无法获取位置，继续尝试… no position yet, still trying");
    }, { enableHighAccuracy: true, maximumAge: 0, timeout: 60000 });
  }
  function unwatch() {
    if (patrolWatch !== null && navigator.geolocation) navigator.geolocation.clearWatch(patrolWatch);
    patrolWatch = null;
  }
  // one position (from watchPosition, or the test hook window.onemapField.position)
  function onPosition(pos) {
    var lon = pos.coords.longitude, lat = pos.coords.latitude, p = state.patrol;
    state.position = [lat, lon];
    if (document.body.getAttribute("data-patrol-gps") === "error") patrolNote("");
    document.body.setAttribute("data-patrol-gps", "ok");
    if (state.layers.me) {
      state.layers.me.clearLayers();
      L.circleMarker([lat, lon], { radius: 7, color: "#fff", weight: 2, fillColor: "#1d4ed8", fillOpacity: 1 }).addTo(state.layers.me);
    }
    if (!p || (p.last && p.last[0] === lon && p.last[1] === lat)) return;
    var t = Math.max(pos.timestamp || Date.now(), p.floor);
    p.floor = t;
    p.last = [lon, lat, new Date(t).toISOString()];
    p.pending.push(p.last);
    p.recorded++;
    showPatrol();
    patrolSave().then(function () { if (p.pending.length >= BATCH) flushTrack(); });
  }
  function flushTrack() {
    var p = state.patrol;
    if (!p || !p.pending.length || !online() || !state.session) return Promise.resolve();
    if (state.flushing) return state.flushing;
    var part = p.pending.slice(0, 1000), more = false;
    state.flushing = api("POST", "/field/patrols/" + p.id + "/track", { points: part }).then(function (r) {
      if (r.status === 401) { needLogin(); return; }
      if (r.status === 404 || r.status === 409) {  // ended or gone elsewhere: nothing more to send
        state.patrol = null; unwatch();
        message($("patrol-note"), (r.body && r.body.detail) || "HTTP " + r.status);
        return patrolSave();
      }
      if (!r.ok) {  // points the server will never take: dropped, and said
        p.pending.splice(0, part.length);
        message($("patrol-note"), (r.body && r.body.detail) || "HTTP " + r.status);
        return patrolSave();
      }
      p.pending.splice(0, part.length);
      p.sent = r.body.points;
      more = p.pending.length > 0;
      return patrolSave();
    }).catch(function () {}).then(function () {
      state.flushing = null;
      showPatrol();
      if (more) return flushTrack();
    });
    return state.flushing;
  }
  setInterval(function () { if (state.patrol) flushTrack(); }, 15000);
  function endPatrol() {
    var p = state.patrol;
    if (!p) return Promise.resolve();
    if (!online()) { patrolNote("结束巡查需要联网；轨迹已保存在本机 Ending needs the network; the track is kept."); return Promise.resolve(); }
    unwatch();
    $("patrol-end").disabled = true;
    return flushTrack().then(function () {
      if (p.pending.length) { watch(); patrolNote("轨迹未能全部上传，请稍后再试 the track is not all sent yet"); return; }
      return api("POST", "/field/patrols/" + p.id + "/end").then(function (r) {
        if (r.status === 409) return api("GET", "/field/patrols/" + p.id);
        return r;
      }).then(function (r) {
        if (!r.ok) { watch(); message($("patrol-note"), (r.body && r.body.detail) || "HTTP " + r.status); return; }
        state.patrol = null;
        patrolNote("");
        return patrolSave().then(function () { showPatrol(); return openView(summaryView(r.body)); });
      });
    }).catch(function () { watch(); patrolNote("网络不可用 no network"); }).then(function () { $("patrol-end").disabled = false; });
  }
  function resumePatrol() {
    return getOne("meta", "patrol").then(function (m) {
      state.patrol = m && m.value;
      if (state.patrol) watch();
      showPatrol();
      if (state.patrol && online()) flushTrack();
    });
  }
  $("patrol-start").addEventListener("click", startPatrol);
  $("patrol-end").addEventListener("click", endPatrol);
  $("patrol-hazard").addEventListener("click", function () { openView(hazardView()); });

  function summaryView(s) {
    return function (body) {
      $("sheet-title").textContent = "巡查小结 Patrol summary";
      body.setAttribute("data-type", "patrol"); body.setAttribute("data-id", s.id);
      var minutes = Math.max(0, Math.round((Date.parse(s.ended_at) - Date.parse(s.started_at)) / 60000));
      var dl = el("dl", {
        "class": "fields", id: "patrol-summary", "data-patrol": s.id, "data-buildings": s.buildings.length,
        "data-verified": s.verified.length, "data-changed": (s.changed || []).length, "data-hazards": s.hazards.length
      });
      [["状态", s.status_zh], ["时长", minutes + " 分钟"], ["轨迹", s.track_points + " 点 · " + Math.round(s.length_m) + " 米"],
        ["走访建筑", s.buildings.length + " 栋"], ["核实记录", s.verified.length + " 条"],
        ["修改记录", (s.changed || []).length + " 条"], ["上报隐患", s.hazards.length + " 处"]].forEach(function (row) {
        dl.appendChild(el("dt", null, row[0]));
        dl.appendChild(el("dd", null, row[1]));
      });
      body.appendChild(el("p", { "class": "notice" }, "巡查已结束，记录已保存到服务器。The patrol has ended and is kept on the server."));
      body.appendChild(dl);
      return Promise.resolve();
    };
  }

  // 核实 无误: "checked, still true" — a stamp on the record (verified_at/by); its version stays
  function verifyBlock(type, rec) {
    var box = el("div", { "class": "verify", id: "verify-box" });
    var btn = el("button", { type: "button", "class": "primary", id: "verify-record" }, "核实 无误 Verify");
    var stamp = el("p", { "class": "hint", id: "verify-stamp" });
    var err = el("p", { "class": "error", id: "verify-error", role: "alert" });
    var p = rec.properties || {};
    stamp.textContent = p.verified_at ? "上次核实 " + new Date(p.verified_at).toLocaleString("zh-CN") + (p.verified_by ? " · " + p.verified_by : "") : "尚未核实 not verified yet";
    btn.addEventListener("click", function () {
      err.textContent = "";
      if (!online()) { err.textContent = "核实需要联网 Verifying needs the network."; return; }
      btn.disabled = true;
      var patrol = state.patrol;
      api("POST", "/field/verify", { record_type: type, record_id: rec.id, patrol_id: patrol ? patrol.id : null }).then(function (r) {
        btn.disabled = false;
        if (r.status === 401) { needLogin(); return; }
        if (!r.ok) { message(err, (r.body && r.body.detail) || "HTTP " + r.status, type); return; }
        var v = r.body, same = v.version === rec.version;
        stamp.textContent = "已核实 " + new Date(v.verified_at).toLocaleString("zh-CN") + " · " + v.verified_by +
          " · 版本 v" + v.version + (same ? "（未变 unchanged）" : "（本机为 v" + rec.version + "）") + (v.patrol_id ? " · 巡查 " + v.patrol_id : "");
        stamp.setAttribute("data-verified-by", v.verified_by);
        stamp.setAttribute("data-verified-at", v.verified_at);
        stamp.setAttribute("data-version", v.version);
        box.setAttribute("data-verified", "1");
        rec.properties = Object.assign({}, rec.properties, { verified_at: v.verified_at, verified_by: v.verified_by });
        if (patrol && state.patrol === patrol) { patrol.verified++; showPatrol(); patrolSave(); }
        return putOne("records", rec);
      }, function () { btn.disabled = false; err.textContent = "网络不可用 no network"; });
    });
    box.appendChild(btn);
    box.appendChild(stamp);
    box.appendChild(err);
    return box;
  }

  // 上报隐患: category, level, description, a photo (camera or file), where the worker is now
  function hazardView() {
    return function (body) {
      $("sheet-title").textContent = "上报隐患 Report a hazard";
      body.setAttribute("data-type", "hazard");
      var p = state.patrol;
      if (!p) { body.appendChild(el("p", { "class": "notice" }, "请先开始巡查 Start a patrol first.")); return Promise.resolve(); }
      var form = el("form", { id: "hazard-form", novalidate: "novalidate" });
      var cat = el("select", { name: "category", required: "required" });
      HAZARD_CATEGORIES.forEach(function (c) { cat.appendChild(el("option", { value: c[0] }, c[1] + " " + c[0])); });
      var level = el("select", { name: "level" });
      LEVELS.forEach(function (l) { level.appendChild(el("option", { value: l[0] }, l[1])); });
      var text = el("textarea", { name: "description", maxlength: "2000", required: "required", placeholder: "隐患情况，如：消防通道堵塞" });
      var photo = el("input", { name: "photo", type: "file", accept: "image/jpeg,image/png,image/webp", capture: "environment", id: "hazard-photo" });
      [["类别 Category *", cat], ["等级 Level（由办公室核定）", level], ["描述 Description *", text], ["照片 Photo", photo]].forEach(function (x) {
        var lab = el("label", null, x[0]);
        lab.appendChild(x[1]);
        form.appendChild(lab);
      });
      var where = state.position;
      form.appendChild(el("p", { "class": "hint", id: "hazard-where" }, where ? "位置：我的位置 " + where[1].toFixed(6) + ", " + where[0].toFixed(6) : "还没有定位：请允许定位后再上报 no position yet"));
      var err = el("p", { "class": "error", id: "hazard-error", role: "alert" });
      form.appendChild(err);
      var actions = el("div", { "class": "actions" });
      var send = el("button", { type: "submit", "class": "primary", id: "hazard-send" }, "上报 Report");
      actions.appendChild(send);
      form.appendChild(actions);
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        err.textContent = "";
        var pos = state.position;
        if (!text.value.trim()) { err.textContent = "请填写隐患描述 describe the hazard"; return; }
        if (!pos) { err.textContent = "还没有定位：请允许定位 no position yet"; return; }
        if (!online()) { err.textContent = "上报隐患需要联网 Reporting needs the network."; return; }
        var data = new FormData();
        data.append("category", cat.value);
        data.append("level", level.value);
        data.append("description", text.value.trim());
        data.append("lon", String(pos[1]));
        data.append("lat", String(pos[0]));
        if (photo.files && photo.files[0]) data.append("photo", photo.files[0], photo.files[0].name);
        send.disabled = true;
        fetch(ROOT + "/field/patrols/" + p.id + "/hazards", {
          method: "POST", body: data, cache: "no-store",
          headers: { Accept: "application/json", Authorization: "Bearer " + state.session.token }
        }).then(function (r) {
          return r.text().then(function (t) { var j = null; try { j = JSON.parse(t); } catch (x) { j = null; } return { ok: r.ok, status: r.status, body: j }; });
        }).then(function (r) {
          send.disabled = false;
          if (!r.ok) { message(err, (r.body && r.body.detail) || "HTTP " + r.status); return; }
          var props = r.body.properties || {}, hid = r.body.id || props.id;
          if (state.patrol === p) { p.hazards++; showPatrol(); patrolSave(); }
          form.hidden = true;
          body.appendChild(el("p", { "class": "notice", id: "hazard-done", "data-hazard": hid },
            "已上报 Reported：" + (props.code || "#" + hid) + " · " + (props.status_zh || "已上报") + (photo.files && photo.files[0] ? " · 附照片 1 张" : "")));
        }, function () { send.disabled = false; err.textContent = "网络不可用 no network"; });
      });
      body.appendChild(form);
      return Promise.resolve();
    };
  }

  // --- start ------------------------------------------------------------------------------------
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register(ROOT + "/field/sw.js", { scope: ROOT + "/field" }).then(function () {
      return navigator.serviceWorker.ready;
    }).then(function () { document.body.setAttribute("data-sw", "ready"); }).catch(function (e) {
      document.body.setAttribute("data-sw", "error");
      $("map-note").textContent = "离线功能不可用 offline use unavailable: " + e.message;
    });
  }
  // position: the test hook of the patrol's track (see onPosition): feeds one position into the
  // same path as the browser's watchPosition
  window.onemapField = {
    signedIn: signedIn, signOut: signOut, sync: sync, refresh: refresh, open: openRecord, search: search, tab: tab, dbName: DB_NAME,
    position: function (lon, lat) { onPosition({ coords: { longitude: lon, latitude: lat, accuracy: 5 }, timestamp: Date.now() }); },
    flushTrack: function () { return flushTrack(); }
  };
  showNet();
  getOne("meta", "session").then(function (m) {
    state.session = m && m.value;
    if (!state.session) { showLogin(); return; }
    if (state.session.expires_at && Date.parse(state.session.expires_at) < Date.now()) { needLogin(); return; }
    showApp();
    return drawAll().then(renderOutbox).then(renderReviews).then(resumePatrol).then(function () {
      if (online()) return sync().then(refresh);
    });
  }).catch(function (e) {
    showLogin("本机存储不可用 local storage unavailable: " + (e && e.message));
  }).then(function () {
    document.body.setAttribute("data-ready", "1");
  });
})();
