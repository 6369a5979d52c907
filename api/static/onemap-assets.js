// Idle-asset pages (存量资产): a brochure's footprint map, drawn from the GeoJSON the page
// carries in data-footprint (no tiles: the outline is the map, so it prints and works offline),
// and its print button. No inline script: the page's CSP allows scripts from this service only.
(function () {
  "use strict";
  window.onemapFootprintsDrawn = 0;
  Array.prototype.forEach.call(document.querySelectorAll("[data-footprint]"), function (el) {
    if (!window.L) { return; }
    var feature = JSON.parse(el.getAttribute("data-footprint"));
    var map = L.map(el, { zoomControl: false, attributionControl: false, scrollWheelZoom: false });
    var layer = L.geoJSON(feature, {
      style: { color: "#c2410c", weight: 2.5, fillColor: "#f97316", fillOpacity: 0.35 }
    }).addTo(map);
    var bounds = layer.getBounds();
    if (bounds.isValid()) { map.fitBounds(bounds, { padding: [30, 30], maxZoom: 19 }); }
    L.circleMarker(bounds.getCenter(), { radius: 4, color: "#7c2d12", fillOpacity: 1 }).addTo(map);
    el.setAttribute("data-drawn", "1");
    window.onemapFootprintsDrawn += 1;
  });
  Array.prototype.forEach.call(document.querySelectorAll("[data-print]"), function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
}());
