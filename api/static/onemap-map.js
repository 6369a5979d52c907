// The one-screen viewer: MapLibre over the service's own tiles and style; a layer switcher and
// a legend from the map's layers; click a feature to read its properties (as text, never HTML).
(function () {
  "use strict";
  var el = document.getElementById("map");
  if (!el || !window.maplibregl) return;
  var map = new maplibregl.Map({
    container: el,
    style: el.getAttribute("data-style"),
    localIdeographFontFamily: "'Noto Sans CJK SC', 'WenQuanYi Micro Hei', 'Microsoft YaHei', sans-serif",
    preserveDrawingBuffer: true, // lets a test (or a user's screenshot) read the pixels back
    attributionControl: false,
    hash: true
  });
  window.onemapMap = map;
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
    new maplibregl.Popup({ maxWidth: "360px" }).setLngLat(e.lngLat).setDOMContent(box).addTo(map);
  });

  // ready (for people waiting on a slow link, and for tests) once idle after the first fit
  map.once("idle", function () {
    var b = map.getSource("onemap") && map.getSource("onemap").bounds;
    if (b && !location.hash) map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 10, animate: false });
    map.on("idle", function () { el.setAttribute("data-ready", "1"); });
    map.triggerRepaint();
  });
  map.on("error", function (e) { el.setAttribute("data-error", String(e && e.error && e.error.message)); });
})();
