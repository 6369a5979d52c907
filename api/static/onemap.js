// Draw the page's GeoJSON on a Leaflet map. No base tiles: intranets have no internet, and the
// district outline (our own admin_areas layer) is the base map.
(function () {
  var el = document.getElementById("map");
  if (!el || !window.L) return;
  var map = L.map(el, { preferCanvas: true, attributionControl: false });
  var root = document.querySelector("header .brand").getAttribute("href").replace(/\/\?f=html$/, "");
  fetch(root + "/collections/admin_areas/items?f=json&limit=200&filter=" + encodeURIComponent("level <= 2"))
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (fc) {
      if (fc) L.geoJSON(fc, { style: { color: "#64748b", weight: 1, fill: false }, interactive: false }).addTo(map);
    }).catch(function () {});
  var data = document.getElementById("features");
  var bbox = el.getAttribute("data-bbox");
  if (data) {
    var layer = L.geoJSON(JSON.parse(data.textContent), {
      style: { color: "#0b4f6c", weight: 1.5, fillOpacity: 0.25 },
      pointToLayer: function (f, ll) { return L.circleMarker(ll, { radius: 4, color: "#c2410c", weight: 1, fillOpacity: 0.8 }); },
      onEachFeature: function (f, l) {
        var rows = Object.keys(f.properties || {}).slice(0, 12).map(function (k) { return "<b>" + k + "</b>: " + f.properties[k]; });
        l.bindPopup("<b>#" + f.id + "</b><br>" + rows.join("<br>"));
      }
    }).addTo(map);
    var b = layer.getBounds();
    if (b.isValid()) { map.fitBounds(b, { maxZoom: 17 }); return; }
  }
  if (bbox) {
    var e = JSON.parse(bbox);
    if (e.length === 4) { map.fitBounds([[e[1], e[0]], [e[3], e[2]]]); return; }
  }
  map.setView([31.65, 119.03], 10);
})();
