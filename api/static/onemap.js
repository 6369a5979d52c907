// Draw the page's GeoJSON on a Leaflet map. No base tiles: intranets have no internet, and the
// district outline (our own admin_areas layer) is the base map. Every value reaches the page as
// text (textContent), never as HTML: a name holding markup is shown, not run.
(function () {
  var el = document.getElementById("map");
  if (!el || !window.L) return;
  var map = L.map(el, { preferCanvas: true, attributionControl: false });
  window.onemapMap = map;  // for the browser tests and the console
  L.control.scale({ imperial: false }).addTo(map);
  var root = document.querySelector("header .brand").getAttribute("href").replace(/\/\?f=html$/, "");
  var vocabulary = { titles: {}, values: {} };
  var fields = document.getElementById("fields");
  if (fields) vocabulary = JSON.parse(fields.textContent);

  function shown(name, value) {
    if (value === null || value === undefined) return "";
    var zh = (vocabulary.values[name] || {})[String(value)];
    return zh ? zh + " (" + value + ")" : String(value);
  }

  function popup(f) {
    var box = document.createElement("div");
    var head = document.createElement("b");
    head.textContent = "#" + f.id;
    box.appendChild(head);
    var table = document.createElement("table");
    Object.keys(f.properties || {}).slice(0, 14).forEach(function (k) {
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
      if (fc) L.geoJSON(fc, { style: { color: "#64748b", weight: 1, fill: false }, interactive: false }).addTo(map);
    }).catch(function () {});
  var data = document.getElementById("features");
  var bbox = el.getAttribute("data-bbox");
  var fitted = false;
  if (data) {
    var layer = L.geoJSON(JSON.parse(data.textContent), {
      style: { color: "#0b4f6c", weight: 1.5, fillOpacity: 0.25 },
      pointToLayer: function (f, ll) { return L.circleMarker(ll, { radius: 4, color: "#c2410c", weight: 1, fillOpacity: 0.8 }); },
      onEachFeature: function (f, l) { l.bindPopup(function () { return popup(f); }); }
    }).addTo(map);
    var b = layer.getBounds();
    // one point alone: stop at street scale, so the street outline around it is in view
    var alone = b.isValid() && b.getNorthEast().equals(b.getSouthWest());
    if (b.isValid()) { map.fitBounds(b, { maxZoom: alone ? 13 : 17 }); fitted = true; }
  }
  if (!fitted && bbox) {
    var e = JSON.parse(bbox);
    if (e.length === 4) { map.fitBounds([[e[1], e[0]], [e[3], e[2]]]); fitted = true; }
  }
  if (!fitted) map.setView([31.65, 119.03], 10);
  el.setAttribute("data-ready", "1");

  // the items form: "use the map's view as the box"
  var button = document.getElementById("use-view");
  var input = document.getElementById("bbox");
  if (button && input) {
    button.addEventListener("click", function () {
      var v = map.getBounds();
      input.value = [v.getWest(), v.getSouth(), v.getEast(), v.getNorth()].map(function (n) { return n.toFixed(6); }).join(",");
    });
  }
})();
