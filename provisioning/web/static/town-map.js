// The town's street map of the pick-up points (Leaflet, vendored under static/leaflet/), drawn
// over the schematic plan only when the page names a tile server: without JavaScript, or
// without tiles, the plan and the numbered list stay as they are and the form works the same.
(function () {
  "use strict";
  var box = document.getElementById("town-map");
  if (!box || !box.dataset.tiles || !window.L) { return; }
  var d = box.dataset;
  // Leaflet writes the credit as HTML: the operator's text is shown as text.
  var credit = d.attribution.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  box.textContent = "";
  box.classList.add("live");
  var map = L.map(box, { zoomControl: false, scrollWheelZoom: false });
  L.control.zoom({ zoomInTitle: d.zoomIn, zoomOutTitle: d.zoomOut }).addTo(map);
  L.tileLayer(d.tiles, { attribution: credit, maxZoom: 19 }).addTo(map);
  var centre = [parseFloat(d.lat), parseFloat(d.lon)];
  var bounds = [centre];
  L.marker(centre, {
    icon: L.divIcon({ className: "map-home", html: "\u2302", iconSize: [30, 30] }),
    title: d.label, keyboard: false
  }).addTo(map);
  document.querySelectorAll(".points li[data-lat]").forEach(function (li) {
    var at = [parseFloat(li.dataset.lat), parseFloat(li.dataset.lon)];
    var number = li.dataset.number;
    var marker = L.marker(at, {
      icon: L.divIcon({ className: "map-pin", html: number, iconSize: [30, 30] }),
      title: number + ". " + li.dataset.name,
      riseOnHover: true
    });
    // A marker chooses its point, as clicking its line of the list does.
    marker.on("click", function () {
      var radio = li.querySelector("input[type=radio]");
      if (radio) { radio.checked = true; radio.focus({ preventScroll: true }); }
      li.scrollIntoView({ block: "nearest", behavior: "smooth" });
    });
    marker.addTo(map);
    bounds.push(at);
  });
  function frame() { map.fitBounds(bounds, { padding: [28, 28], maxZoom: 17 }); }
  frame();
  // A phone turned sideways (or a window resized) still shows every point.
  map.on("resize", frame);
})();
