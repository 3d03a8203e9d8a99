// Applies the remembered theme before first paint, then wires the toggle. Without a stored choice the
// page follows prefers-color-scheme through CSS alone.
(function () {
  var KEY = "reqflow-theme";
  var root = document.documentElement;
  var stored = null;
  try { stored = localStorage.getItem(KEY); } catch (e) { stored = null; }
  if (stored === "light" || stored === "dark") root.setAttribute("data-theme", stored);

  function current() {
    var explicit = root.getAttribute("data-theme");
    if (explicit) return explicit;
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.querySelector("[data-theme-toggle]");
    if (!button) return;
    button.hidden = false;
    var sync = function () { button.setAttribute("aria-pressed", current() === "dark" ? "true" : "false"); };
    sync();
    button.addEventListener("click", function () {
      var next = current() === "dark" ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { localStorage.setItem(KEY, next); } catch (e) { /* private mode: the choice lasts this page */ }
      sync();
    });
  });
})();
