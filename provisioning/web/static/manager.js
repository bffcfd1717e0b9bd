// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  // A form marked data-once is sent once: a double click does not send it twice.
  document.querySelectorAll("form[data-once]").forEach(function (form) {
    form.addEventListener("submit", function () {
      if (form.dataset.sent) { return; }
      form.dataset.sent = "1";
      setTimeout(function () {
        form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
      }, 0);
    });
  });

  // The association status panel follows the change live.
  var panel = document.getElementById("status");
  if (!panel || !panel.dataset.url) { return; }
  var labels = document.getElementById("labels").dataset;
  var steps = ["pending", "notified", "applied"];
  function show(view) {
    var reached = steps.indexOf(view.status);
    panel.dataset.state = view.status;
    panel.querySelectorAll("[data-step]").forEach(function (li) {
      li.classList.toggle("done", steps.indexOf(li.dataset.step) <= reached);
    });
    var result = panel.querySelector("[data-field=result]");
    var badge = document.createElement("span");
    var text;
    if (view.status === "applied") {
      badge.className = "badge ok"; badge.textContent = labels.applied;
      text = labels.in.replace("{s}", view.seconds_text);
    } else if (view.status === "overdue") {
      badge.className = "badge warn"; badge.textContent = labels.overdue; text = "";
    } else {
      badge.className = "badge info"; badge.textContent = labels.progress;
      text = labels.sofar.replace("{s}", view.elapsed_seconds);
    }
    result.textContent = "";
    result.appendChild(badge);
    result.appendChild(document.createTextNode(" " + text));
    panel.querySelector("[data-field=late]").hidden = !view.late;
  }
  function poll() {
    fetch(panel.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (view) {
        if (view) { show(view); }
        if (!view || view.status !== "applied") { setTimeout(poll, 1000); }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  if (panel.dataset.state !== "applied") { setTimeout(poll, 500); }
})();
