// The safety map (城市安全一张图), over the viewer: "1+3+N" — one base map, three tiers by zoom
// (district overview → street → point detail), N thematic layers: hazards by level with the
// overdue ringed in red, sensor warnings pulsing (kept live by the warnings stream), the risk
// surface by grid or H3 cell, and a 119 alarm's five-level response drawn where it happened.
// Every value reaches the page as text, never as HTML; every request goes to this host.
(function () {
  "use strict";
  var el = document.getElementById("map");
  if (!el || !window.maplibregl) return;
  var auth = window.onemapAuth || { headers: function () { return {}; }, token: null };
  // the district the viewer shows (?district=): the lists and the stream are asked for it
  var district = window.onemapDistrict || { url: function (u) { return u; }, onChange: function () {} };
  var root = document.querySelector("header .brand").getAttribute("href").replace(/\/\?f=html$/, "");
  var TIERS = [
    { name: "区级总览 district overview", max: 12 },
    { name: "街道 street", max: 15 },
    { name: "点位详情 point detail", max: 99 }
  ];
  var RISK_RAMP = ["interpolate", ["linear"], ["get", "score"], 0, "#fff7ec", 0.25, "#fdd49e", 0.5, "#fc8d59", 0.75, "#d7301f", 1, "#7f0000"];

  function waitForMap(then) {
    var tries = 0;
    (function again() {
      var map = window.onemapMap;
      if (map && map.isStyleLoaded && map.isStyleLoaded()) return then(map);
      if (map && !map._onemapSafetyWaiting) {
        map._onemapSafetyWaiting = true;
        map.once("load", function () { then(map); });
        return;
      }
      if (tries++ < 100) setTimeout(again, 100);
    })();
  }

  function getJSON(path, options) {
    var o = options || {};
    o.headers = Object.assign({ Accept: "application/json" }, auth.headers(), o.headers || {});
    if (!o.method || o.method === "GET") path = district.url(path);
    return fetch(root + path, o).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, status: r.status, body: body }; });
    });
  }

  function say(id, text) {
    var node = document.getElementById(id);
    if (node) node.textContent = text;
  }

  function nowText() {
    // hazard times reach the tiles as "YYYY-MM-DD HH:MM:SS…+00": the same form compares as text
    return new Date().toISOString().replace("T", " ").slice(0, 19);
  }

  function overdue(map) {
    map.addLayer({
      id: "hazards-overdue",
      type: "circle",
      source: "onemap",
      "source-layer": "hazards",
      minzoom: TIERS[0].max,
      filter: ["all", ["!=", ["get", "status"], "closed"], ["<", ["get", "deadline"], nowText()]],
      paint: { "circle-radius": 9, "circle-color": "rgba(0,0,0,0)", "circle-stroke-color": "#ff0000", "circle-stroke-width": 2.5 },
      metadata: { "onemap:title": "超期隐患 overdue hazards" }
    });
  }

  function risk(map, level) {
    getJSON("/safety/risk?level=" + encodeURIComponent(level)).then(function (answer) {
      if (!answer.ok) { say("safety-risk-note", "风险图需要安全员权限 risk needs a safety officer's token (" + answer.status + ")"); return; }
      var data = answer.body;
      var scores = data.features.map(function (f) { return f.properties.score || 0; });
      var top = Math.max.apply(null, scores.concat([1e-9]));
      data.features.forEach(function (f) { f.properties.score = (f.properties.score || 0) / top; });
      if (map.getSource("risk")) map.getSource("risk").setData(data);
      else {
        map.addSource("risk", { type: "geojson", data: data });
        var below = map.getLayer("roads") ? "roads" : undefined;
        map.addLayer({ id: "risk", type: "fill", source: "risk", paint: { "fill-color": RISK_RAMP, "fill-opacity": ["interpolate", ["linear"], ["zoom"], 10, 0.65, 16, 0.25] }, metadata: { "onemap:title": "风险 risk" } }, below);
      }
      say("safety-risk-note", "风险图 risk: " + data.features.length + " 个单元 areas, 最高分 top score " + top.toFixed(2));
      el.setAttribute("data-risk", String(data.features.length));
    }).catch(function () {});
  }

  function warnings(map) {
    function load() {
      getJSON("/safety/warnings?f=geojson").then(function (answer) {
        if (!answer.ok) return;
        if (map.getSource("warnings")) map.getSource("warnings").setData(answer.body);
        else {
          map.addSource("warnings", { type: "geojson", data: answer.body });
          map.addLayer({ id: "warnings", type: "circle", source: "warnings", paint: { "circle-radius": 8, "circle-color": "#f59e0b", "circle-opacity": 0.5, "circle-stroke-color": "#b45309", "circle-stroke-width": 1.5 }, metadata: { "onemap:title": "预警 warnings" } });
          var t0 = performance.now();
          (function pulse(t) {
            var phase = ((t - t0) % 1200) / 1200;
            if (map.getLayer("warnings")) {
              map.setPaintProperty("warnings", "circle-radius", 6 + 10 * phase);
              map.setPaintProperty("warnings", "circle-opacity", 0.7 * (1 - phase));
            }
            requestAnimationFrame(pulse);
          })(t0);
        }
        say("safety-warnings-note", "当前预警 active warnings: " + answer.body.features.length);
        el.setAttribute("data-warnings", String(answer.body.features.length));
      }).catch(function () {});
    }
    load();
    // the warnings stream (Server-Sent Events), read with fetch so that the token goes in the
    // Authorization header, never in a URL; a dropped stream is taken up again after 5 s, and
    // one of another district is closed (its generation gone) when the district changes
    var generation = 0, stop = null;
    function listen() {
      var mine = ++generation;
      var ending = window.AbortController ? new AbortController() : null;
      stop = function () { if (ending) ending.abort(); };
      function again() { if (mine === generation) setTimeout(function () { if (mine === generation) listen(); }, 5000); }
      fetch(root + district.url("/safety/warnings/stream"), { headers: Object.assign({ Accept: "text/event-stream" }, auth.headers()), signal: ending && ending.signal })
        .then(function (r) {
          if (!r.ok || !r.body) return;
          var reader = r.body.getReader();
          var decoder = new TextDecoder();
          var buffer = "";
          (function read() {
            reader.read().then(function (chunk) {
              if (chunk.done) { again(); return; }
              buffer += decoder.decode(chunk.value, { stream: true });
              var events = buffer.split("\n\n");
              buffer = events.pop();
              if (events.some(function (e) { return /^event: (warning|cleared)/m.test(e); })) load();
              read();
            }).catch(again);
          })();
        }).catch(again);
    }
    var streaming = auth.token && window.ReadableStream;
    if (streaming) listen();
    else setInterval(load, 30000);
    district.onChange(function () {
      load();
      if (streaming) { generation++; if (stop) stop(); listen(); }
    });
  }

  function tiers(map) {
    function show() {
      var z = map.getZoom();
      var tier = TIERS.filter(function (t) { return z < t.max; })[0];
      say("safety-tier", "当前层级 tier: " + tier.name + " (zoom " + z.toFixed(1) + ")");
    }
    map.on("zoomend", show);
    show();
  }

  function point(lon, lat, props) {
    return { type: "Feature", geometry: { type: "Point", coordinates: [lon, lat] }, properties: props || {} };
  }

  function items(part) { return (part && (part.items || part.nearest)) || []; }

  function drawResponse(map, response) {
    var at = response.point || {};
    var lon = at.lon, lat = at.lat;
    var features = [point(lon, lat, { role: "alarm" })];
    items(response.fire_stations).forEach(function (s) {
      if (s.lon === undefined) return;
      features.push(point(s.lon, s.lat, { role: "station" }));
      features.push({ type: "Feature", geometry: { type: "LineString", coordinates: [[lon, lat], [s.lon, s.lat]] }, properties: { role: "route" } });
    });
    items(response.hydrants).forEach(function (h) { if (h.lon !== undefined) features.push(point(h.lon, h.lat, { role: "hydrant" })); });
    items(response.key_units).forEach(function (k) { if (k.lon !== undefined) features.push(point(k.lon, k.lat, { role: "key_unit" })); });
    items(response.hazards).forEach(function (h) { if (h.lon !== undefined) features.push(point(h.lon, h.lat, { role: "hazard" })); });
    var data = { type: "FeatureCollection", features: features };
    if (map.getSource("alarm")) map.getSource("alarm").setData(data);
    else {
      map.addSource("alarm", { type: "geojson", data: data });
      map.addLayer({ id: "alarm-routes", type: "line", source: "alarm", filter: ["==", ["get", "role"], "route"], paint: { "line-color": "#dc2626", "line-width": 2, "line-dasharray": [2, 2] } });
      map.addLayer({
        id: "alarm", type: "circle", source: "alarm", filter: ["!=", ["get", "role"], "route"],
        paint: {
          "circle-radius": ["match", ["get", "role"], "alarm", 10, "station", 8, 5],
          "circle-color": ["match", ["get", "role"], "alarm", "#dc2626", "station", "#1d4ed8", "hydrant", "#0891b2", "key_unit", "#7c3aed", "#f97316"],
          "circle-stroke-color": "#fff", "circle-stroke-width": 1.5
        },
        metadata: { "onemap:title": "119 警情 alarm response" }
      });
    }
    var list = document.getElementById("alarm-levels");
    if (list) {
      list.textContent = "";
      (response.levels || []).forEach(function (level) {
        var li = document.createElement("li");
        var contacts = (level.contacts || []).map(function (c) { return [c.post, c.name, c.phone].filter(Boolean).join(" "); }).join("；");
        var workers = (level.grid_workers || []).map(function (w) { return w.name || w.username || ""; }).join("、");
        li.textContent = (level.kind_zh || level.kind || "") + "：" + (level.name || level.none || "—") +
          (contacts ? "（" + contacts + "）" : "") + (workers ? " 网格员 " + workers : "");
        list.appendChild(li);
      });
      var stations = items(response.fire_stations).map(function (s) { return s.name + " " + s.minutes.toFixed(1) + " 分钟"; }).join("；");
      var li = document.createElement("li");
      li.textContent = "最近消防站 stations: " + (stations || "—") + " · 200米内消火栓 hydrants: " + items(response.hydrants).length +
        " · 100米内居民 residents: " + ((response.residents || {}).total || 0);
      list.appendChild(li);
    }
    el.setAttribute("data-alarm", String(features.length));
    map.flyTo({ center: [lon, lat], zoom: Math.max(map.getZoom(), 15) });
  }

  function alarms(map) {
    var button = document.getElementById("alarm-here");
    if (!button) return;
    var armed = false;
    button.addEventListener("click", function () {
      armed = true;
      say("alarm-note", "点击地图上的报警位置 click where the fire is");
    });
    map.on("click", function (e) {
      if (!armed) return;
      armed = false;
      say("alarm-note", "正在联动 linking…");
      getJSON("/safety/alarms", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ lon: e.lngLat.lng, lat: e.lngLat.lat })
      }).then(function (answer) {
        if (!answer.ok) { say("alarm-note", (answer.body && answer.body.detail) || ("refused " + answer.status)); return; }
        say("alarm-note", "警情 #" + (answer.body.alarm_id || "") + " 已联动 linked, " + answer.body.seconds + " s");
        drawResponse(map, answer.body);
      }).catch(function () { say("alarm-note", "联动失败 failed"); });
    });
    window.onemapDrawAlarm = function (response) { drawResponse(map, response); };
  }

  waitForMap(function (map) {
    overdue(map);
    tiers(map);
    if (!auth.token) {  // risk, warnings and alarms are the officers': nothing asked without a token
      say("safety-risk-note", "风险、预警与119联动需要安全员令牌 risk, warnings and alarms need a safety officer's token (令牌 below)");
      el.setAttribute("data-safety", "1");
      return;
    }
    var picker = document.getElementById("risk-level");
    risk(map, picker ? picker.value : "grid");
    if (picker) picker.addEventListener("change", function () { risk(map, picker.value); });
    district.onChange(function () { risk(map, picker ? picker.value : "grid"); });
    warnings(map);
    alarms(map);
    el.setAttribute("data-safety", "1");
  });
})();
