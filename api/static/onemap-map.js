// The one-screen viewer: MapLibre over the service's own tiles and style; a layer switcher and
// a legend from the map's layers; click a feature to read its properties (as text, never HTML).
(function () {
  "use strict";
  var el = document.getElementById("map");
  if (!el || !window.maplibregl) return;
  // a token for the roles' own layers: given once as #token=… (never sent to the server in a
  // URL), kept for this tab only, sent as Authorization to this host alone
  var given = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (given) {
    sessionStorage.setItem("onemap-token", decodeURIComponent(given[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  var token = sessionStorage.getItem("onemap-token");
  window.onemapAuth = {
    token: token,
    headers: function () { return token ? { Authorization: "Bearer " + token } : {}; }
  };
  var here = location.protocol + "//" + location.host + "/";
  var map = new maplibregl.Map({
    container: el,
    style: el.getAttribute("data-style"),
    transformRequest: function (url) {
      if (token && url.indexOf(here) === 0) return { url: url, headers: { Authorization: "Bearer " + token } };
      return { url: url };
    },
    localIdeographFontFamily: "'Noto Sans CJK SC', 'WenQuanYi Micro Hei', 'Microsoft YaHei', sans-serif",
    preserveDrawingBuffer: true, // lets a test (or a user's screenshot) read the pixels back
    attributionControl: false,
    hash: true
  });
  window.onemapMap = map;
  var tokenForm = document.getElementById("token-form");
  if (tokenForm) tokenForm.addEventListener("submit", function (e) {
    e.preventDefault();
    var value = document.getElementById("token-input").value.trim();
    if (value) sessionStorage.setItem("onemap-token", value); else sessionStorage.removeItem("onemap-token");
    location.reload();
  });
  var root = document.querySelector("header .brand").getAttribute("href").replace(/\/\?f=html$/, "");
  map.addControl(new maplibregl.NavigationControl(), "top-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");

  function layersOf(source) {
    return map.getStyle().layers.filter(function (l) { return l["source-layer"] === source; });
  }
  document.querySelectorAll("#layers input[data-layer]").forEach(function (box) {
    box.addEventListener("change", function () {
      layersOf(box.getAttribute("data-layer")).forEach(function (l) {
        map.setLayoutProperty(l.id, "visibility", box.checked ? "visible" : "none");
      });
    });
  });

  map.on("click", function (e) {
    var hit = map.queryRenderedFeatures(e.point)[0];
    if (!hit) return;
    var box = document.createElement("div");
    var title = document.createElement("strong");
    title.textContent = (hit.layer.metadata && hit.layer.metadata["onemap:title"]) || hit.sourceLayer;
    box.appendChild(title);
    var table = document.createElement("table");
    Object.keys(hit.properties).slice(0, 16).forEach(function (k) {
      var row = table.insertRow();
      row.insertCell().textContent = k;
      row.insertCell().textContent = String(hit.properties[k]);
    });
    box.appendChild(table);
    if (hit.sourceLayer === "assets" && hit.id !== undefined && hit.id !== null) {
      // an asset opened on the asset map: its page and brochure, and one public view counted
      // (the service keeps a count only, nothing about who looked; staff views are not counted)
      [["/assets/" + hit.id + "?f=html", "区位分析 site"], ["/assets/" + hit.id + "/brochure", "推介单页 brochure"]].forEach(function (l) {
        var a = document.createElement("a");
        a.href = root + l[0];
        a.textContent = l[1];
        a.style.marginRight = "1em";
        box.appendChild(a);
      });
      fetch(root + "/assets/view/" + hit.id, { method: "POST" }).catch(function () {});
    }
    new maplibregl.Popup({ maxWidth: "360px" }).setLngLat(e.lngLat).setDOMContent(box).addTo(map);
  });

  // the check-up map: any indicator of the latest run over the base map, by the chosen level
  var picker = document.getElementById("checkup-indicator");
  var level = document.getElementById("checkup-level");
  var RAMP = ["#f7fbff", "#c6dbef", "#6baed6", "#2171b5", "#08306b"];
  function showCheckup() {
    var legend = document.getElementById("checkup-legend");
    ["checkup-fill", "checkup-line"].forEach(function (id) { if (map.getLayer(id)) map.removeLayer(id); });
    if (map.getSource("checkup")) map.removeSource("checkup");
    el.removeAttribute("data-checkup");
    if (!picker.value) return;
    var url = "/checkup/runs/latest/indicators/" + encodeURIComponent(picker.value) +
      "/areas.geojson?level=" + encodeURIComponent(level.value);
    fetch(url, { credentials: "same-origin", headers: window.onemapAuth.headers() }).then(function (answer) {
      if (!answer.ok) {
        return answer.json().then(function (p) { throw new Error(p.detail || p.title || answer.status); });
      }
      return answer.json();
    }).then(function (data) {
      var values = data.features.map(function (f) { return f.properties.value; })
        .filter(function (v) { return v !== null; }).sort(function (a, b) { return a - b; });
      var step = ["step", ["coalesce", ["get", "value"], -1e12], "#e4e7eb", -1e11, RAMP[0]];
      for (var k = 1; k < RAMP.length && values.length; k++) {
        var cut = values[Math.floor((values.length - 1) * k / RAMP.length)];
        if (cut > step[step.length - 2]) { step.push(cut, RAMP[k]); }
      }
      map.addSource("checkup", { type: "geojson", data: data });
      // under the points (facilities) and the area outlines, over the land
      var above = layersOf("facilities").concat(layersOf("admin_areas"))[0];
      map.addLayer({ id: "checkup-fill", type: "fill", source: "checkup",
        paint: { "fill-color": step, "fill-opacity": 0.7 } }, above && above.id);
      map.addLayer({ id: "checkup-line", type: "line", source: "checkup",
        paint: { "line-color": ["case", ["==", ["get", "passed"], false], "#d62728", "#52606d"],
                 "line-width": ["case", ["==", ["get", "passed"], false], 2.5, 0.5] } }, above && above.id);
      var unit = picker.selectedOptions[0].getAttribute("data-unit") || "";
      legend.textContent = "第 " + data.run + " 次体检 run " + data.run + " · " +
        data.features.length + " 个片区 areas · " + unit + " · 红框：未达标 red outline: failing";
      el.setAttribute("data-checkup", String(data.features.length));
    }).catch(function (err) {
      legend.textContent = "无法读取体检结果 cannot read the check-up: " + err.message;
      el.setAttribute("data-checkup", "error");
    });
  }
  if (picker) {
    picker.addEventListener("change", showCheckup);
    level.addEventListener("change", showCheckup);
  }

  // ready (for people waiting on a slow link, and for tests) once idle after the first fit
  map.once("idle", function () {
    var b = map.getSource("onemap") && map.getSource("onemap").bounds;
    if (b && !location.hash) map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 10, animate: false });
    map.on("idle", function () { el.setAttribute("data-ready", "1"); });
    map.triggerRepaint();
  });
  map.on("error", function (e) { el.setAttribute("data-error", String(e && e.error && e.error.message)); });
})();
