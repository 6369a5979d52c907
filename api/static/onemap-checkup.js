// The check-up report's maps and change chart, drawn from the JSON the page carries
// (#checkup-data). No tiles: the areas themselves are the map, so it works with no network.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("checkup-data").textContent);
  var RAMP = ["#f7fbff", "#c6dbef", "#6baed6", "#2171b5", "#08306b"];
  window.onemapMapsDrawn = 0;

  function breaks(values) {
    var sorted = values.filter(function (v) { return v !== null; }).sort(function (a, b) { return a - b; });
    if (!sorted.length) { return []; }
    var out = [];
    for (var k = 1; k < RAMP.length; k++) { out.push(sorted[Math.floor((sorted.length - 1) * k / RAMP.length)]); }
    return out;
  }
  function colour(value, cuts) {
    if (value === null || value === undefined) { return "#e4e7eb"; }
    var k = 0;
    while (k < cuts.length && value > cuts[k]) { k++; }
    return RAMP[k];
  }
  function fmt(v) { return v === null || v === undefined ? "—" : (Math.round(v * 10) / 10).toLocaleString("zh-CN"); }

  data.maps.forEach(function (m) {
    var el = document.getElementById("map-" + m.id);
    if (!el || !window.L) { return; }
    var values = m.data.features.map(function (f) { return f.properties.value; });
    var cuts = breaks(values);
    var map = L.map(el, { zoomControl: false, attributionControl: false, preferCanvas: true });
    var layer = L.geoJSON(m.data, {
      style: function (f) {
        var failing = f.properties.passed === false;
        return {
          fillColor: colour(f.properties.value, cuts), fillOpacity: 0.85,
          color: failing ? "#d62728" : "#7b8794", weight: failing ? 2.5 : 0.6
        };
      },
      onEachFeature: function (f, l) {
        l.bindTooltip(f.properties.name + "：" + fmt(f.properties.value) + " " + (m.unit || "") +
          (f.properties.passed === false ? "（未达标）" : ""));
      }
    }).addTo(map);
    var bounds = layer.getBounds();
    if (bounds.isValid()) { map.fitBounds(bounds, { padding: [6, 6] }); } else { map.setView([31.65, 119.03], 10); }
    var legend = document.getElementById("legend-" + m.id);
    if (legend && cuts.length) {
      var seen = {}, parts = [];
      RAMP.forEach(function (c, k) {
        var label = k < cuts.length ? "≤ " + fmt(cuts[k]) : "> " + fmt(cuts[cuts.length - 1]);
        if (seen[label]) { return; }  // equal breaks (many areas at one value): one key each
        seen[label] = true;
        parts.push('<i style="background:' + c + '"></i>' + label);
      });
      legend.innerHTML = parts.join(" ") + ' <i class="fail"></i>未达标 failing';
    }
    el.setAttribute("data-drawn", String(m.data.features.length));
    window.onemapMapsDrawn += 1;
  });

  // year on year: one bar per indicator, its change at district level, green better, red worse
  var chart = document.getElementById("change-chart");
  if (chart && data.change) {
    var rows = data.change.changes.filter(function (c) { return c.change !== null; });
    var width = 720, bar = 18, height = rows.length * (bar + 6) + 10;
    var most = Math.max.apply(null, rows.map(function (c) { return Math.abs(c.change); }).concat([1e-9]));
    var svg = ['<svg class="bars" viewBox="0 0 ' + width + " " + height + '" width="100%">'];
    rows.forEach(function (c, k) {
      var y = 5 + k * (bar + 6), half = 180, scale = (width - 420) / 2 / most;
      var w = Math.abs(c.change) * scale, x = c.change >= 0 ? 420 + half : 420 + half - w;
      var fill = c.trend === "better" ? "#2f8132" : (c.trend === "worse" ? "#b42318" : "#7b8794");
      svg.push('<text x="0" y="' + (y + 13) + '">' + c.name_zh + "</text>");
      svg.push('<rect x="' + x + '" y="' + y + '" width="' + Math.max(w, 1) + '" height="' + bar + '" fill="' + fill + '"></rect>');
      svg.push('<text x="' + (width - 60) + '" y="' + (y + 13) + '">' + (c.change > 0 ? "+" : "") + fmt(c.change) + "</text>");
    });
    svg.push("</svg>");
    chart.innerHTML = svg.join("");
  }
}());
