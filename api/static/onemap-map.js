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
  // a position given in the address (#zoom/lat/lon) is kept; read now, before the map's own
  // hash handler writes one at its first move
  var placed = location.hash.length > 1;
  // the district (区) the page shows, "" for the whole city (全市): every vector tile of this
  // host and every list the page's scripts ask for carries it as ?district=
  var district = el.getAttribute("data-district") || "";
  var districtPicker = document.getElementById("district");
  var districtListeners = [];
  function withDistrict(url) {
    // by hand, not new URL(): a tile template's {z}/{x}/{y} must stay as it is
    var q = url.indexOf("?");
    var params = new URLSearchParams(q < 0 ? "" : url.slice(q + 1));
    if (district) params.set("district", district); else params.delete("district");
    var rest = params.toString();
    return (q < 0 ? url : url.slice(0, q)) + (rest ? "?" + rest : "");
  }
  window.onemapDistrict = {
    code: function () { return district; },
    url: withDistrict,
    onChange: function (fn) { districtListeners.push(fn); }
  };
  var map = new maplibregl.Map({
    container: el,
    style: el.getAttribute("data-style"),
    transformRequest: function (url, kind) {
      if (url.indexOf(here) !== 0) return { url: url };
      if (kind === "Tile" && /\.mvt(\?|$)/.test(url)) url = withDistrict(url);
      return token ? { url: url, headers: { Authorization: "Bearer " + token } } : { url: url };
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
    var url = withDistrict("/checkup/runs/latest/indicators/" + encodeURIComponent(picker.value) +
      "/areas.geojson?level=" + encodeURIComponent(level.value));
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

  // the district picker: its boxes (each district's extent; the city's, all of them)
  function districtBox(code) {
    var option = districtPicker && districtPicker.querySelector('option[value="' + code + '"]');
    var box = option && JSON.parse(option.getAttribute("data-bbox"));
    if (!box || !box.length) return null;
    if (typeof box[0] === "number") return box;
    return box.reduce(function (a, b) {
      return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[2], b[2]), Math.max(a[3], b[3])];
    });
  }
  function chooseDistrict(code) {
    district = code;
    el.setAttribute("data-district", code);
    if (districtPicker) districtPicker.value = code;
    var query = new URLSearchParams(location.search);
    if (code) query.set("district", code); else query.delete("district");
    var rest = query.toString();
    history.replaceState(history.state, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
    Object.keys(map.getStyle().sources).forEach(function (id) {
      var source = map.getSource(id);
      if (source && source.type === "vector" && source.tiles) source.setTiles(source.tiles.map(withDistrict));
    });
    var box = districtBox(code);
    if (box) map.fitBounds([[box[0], box[1]], [box[2], box[3]]], { padding: 10, animate: false });
    if (picker && picker.value) showCheckup();
    districtListeners.forEach(function (fn) { fn(code); });
  }
  if (districtPicker) districtPicker.addEventListener("change", function () { chooseDistrict(districtPicker.value); });
  // a user bound to a district (the style says so, fetched with their token) has no choice
  map.once("styledata", function () {
    var bound = (map.getStyle().metadata || {})["onemap:district"];
    if (!bound) return;
    document.querySelectorAll(".district-picker").forEach(function (node) { node.remove(); });
    districtPicker = null;
    if (district && district !== bound) chooseDistrict("");
  });

  // ready (for people waiting on a slow link, and for tests) once idle after the first fit
  map.once("idle", function () {
    var b = (district && districtBox(district)) || (map.getSource("onemap") && map.getSource("onemap").bounds);
    if (b && !placed) map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 10, animate: false });
    map.on("idle", function () { el.setAttribute("data-ready", "1"); });
    map.triggerRepaint();
  });
  map.on("error", function (e) { el.setAttribute("data-error", String(e && e.error && e.error.message)); });
})();
