// The idle-asset pages' map (list, one asset with its surroundings, comparison): the page's assets
// over the district outline, rings of 500 m / 1 km / 3 km around one asset, and on the list a
// polygon drawn by clicks that becomes the search's "within". No base tiles (intranets have no
// internet); every value reaches the page as text, never as HTML.
(function () {
  var el = document.getElementById("map");
  if (!el || !window.L) return;
  var map = L.map(el, { preferCanvas: true, attributionControl: false });
  window.onemapMap = map;
  L.control.scale({ imperial: false }).addTo(map);
  map.setView([31.65, 119.03], 10);  // a view before any layer: the canvas needs its bounds
  var root = document.querySelector("header .brand").getAttribute("href").replace(/\/\?f=html$/, "");
  var vocabulary = JSON.parse((document.getElementById("fields") || { textContent: '{"titles":{},"values":{}}' }).textContent);
  var COLOURS = { promoted: "#15803d", negotiating: "#b45309", revitalised: "#1d4ed8", entered: "#6b7280", withdrawn: "#9ca3af" };
  var RINGS = { 500: "#b91c1c", 1000: "#c2410c", 3000: "#0b4f6c" };

  function shown(name, value) {
    if (value === null || value === undefined) return "";
    var zh = (vocabulary.values[name] || {})[String(value)];
    return zh ? zh : String(value);
  }

  function popup(f) {
    var box = document.createElement("div");
    var link = document.createElement("a");
    link.href = root + "/assets/" + f.id + "?f=html";
    link.textContent = f.properties.name || ("#" + f.id);
    box.appendChild(link);
    var table = document.createElement("table");
    ["code", "category", "status", "land_area_m2", "floor_area_m2", "landuse_code", "available_from"].forEach(function (k) {
      if (!(k in f.properties)) return;
      var row = table.insertRow();
      row.insertCell().textContent = vocabulary.titles[k] || k;
      row.insertCell().textContent = shown(k, f.properties[k]);
    });
    box.appendChild(table);
    return box;
  }

  fetch(root + "/collections/admin_areas/items?f=json&limit=200&filter=" + encodeURIComponent("level <= 2"))
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (fc) {
      if (fc) L.geoJSON(fc, { style: { color: "#64748b", weight: 1, fill: false }, interactive: false }).addTo(map).bringToBack();
    }).catch(function () {});

  var data = JSON.parse(document.getElementById("features").textContent);
  var rings = data.features.filter(function (f) { return f.properties && f.properties.ring_m; });
  var assets = data.features.filter(function (f) { return !(f.properties && f.properties.ring_m); });
  rings.sort(function (a, b) { return b.properties.ring_m - a.properties.ring_m; });
  var ringLayer = L.geoJSON({ type: "FeatureCollection", features: rings }, {
    style: function (f) { return { color: RINGS[f.properties.ring_m] || "#555", weight: 1.5, dashArray: "4 4", fillOpacity: 0.04 }; },
    onEachFeature: function (f, l) { l.bindTooltip(f.properties.ring_m >= 1000 ? f.properties.ring_m / 1000 + " 公里 km" : f.properties.ring_m + " 米 m"); }
  }).addTo(map);
  var assetLayer = L.geoJSON({ type: "FeatureCollection", features: assets }, {
    style: function (f) { var c = COLOURS[f.properties.status] || "#0b4f6c"; return { color: c, weight: 2, fillColor: c, fillOpacity: 0.45 }; },
    onEachFeature: function (f, l) { l.bindPopup(function () { return popup(f); }); }
  }).addTo(map);
  // footprints are small: a marker at each, so that a district-wide list is visible at all
  assets.forEach(function (f) {
    var b = L.geoJSON(f).getBounds();
    if (b.isValid()) L.circleMarker(b.getCenter(), { radius: 5, color: COLOURS[f.properties.status] || "#0b4f6c", weight: 1, fillOpacity: 0.8 })
      .bindPopup(function () { return popup(f); }).addTo(map);
  });
  var bounds = (rings.length ? ringLayer : assetLayer).getBounds();
  if (bounds.isValid()) map.fitBounds(bounds, { maxZoom: 17, padding: [10, 10] });

  // the list: draw a polygon by clicks; "done" writes it into the form as WKT
  var within = document.getElementById("within");
  var drawButton = document.getElementById("draw-area");
  if (within && drawButton) {
    var shape = null;
    var corners = [];
    function wkt(points) {
      var ring = points.concat([points[0]]).map(function (p) { return p.lng.toFixed(6) + " " + p.lat.toFixed(6); });
      return "POLYGON((" + ring.join(", ") + "))";
    }
    function show(points) {
      if (shape) map.removeLayer(shape);
      shape = points.length ? L.polygon(points, { color: "#7c3aed", weight: 2, fillOpacity: 0.08 }).addTo(map) : null;
    }
    if (within.value) {
      var m = within.value.match(/-?\d+(\.\d+)?\s+-?\d+(\.\d+)?/g) || [];
      show(m.map(function (pair) { var xy = pair.split(/\s+/); return L.latLng(+xy[1], +xy[0]); }));
    }
    var drawing = false;
    var hint = document.getElementById("draw-hint");
    drawButton.addEventListener("click", function () {
      drawing = true; corners = []; show([]);
      el.classList.add("drawing");
      if (hint) hint.hidden = false;
    });
    map.on("click", function (e) {
      if (!drawing) return;
      corners.push(e.latlng);
      show(corners);
    });
    document.getElementById("draw-done").addEventListener("click", function () {
      drawing = false;
      el.classList.remove("drawing");
      if (hint) hint.hidden = true;
      if (corners.length >= 3) within.value = wkt(corners);
    });
    document.getElementById("clear-area").addEventListener("click", function () {
      within.value = ""; corners = []; show([]);
    });
  }
  el.setAttribute("data-ready", "1");
})();
