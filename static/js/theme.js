// Applies the remembered theme before first paint, then wires the toggle. Without a stored choice the
// page follows prefers-color-scheme through CSS alone.
(function () {
  var KEY = "reqflow-theme";
  var root = document.documentElement;
  // Set before the body is parsed, so CSS can show the toggle without shifting the layout after first paint.
  root.classList.add("js");
  var stored = null;
  try { stored = localStorage.getItem(KEY); } catch (e) { stored = null; }
  if (stored === "light" || stored === "dark") root.setAttribute("data-theme", stored);

  function current() {
    var explicit = root.getAttribute("data-theme");
    if (explicit) return explicit;
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  // A link to a section that is a closed <details> (the "Start here" box) opens it, and printing opens them all.
  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var target = id && document.getElementById(id);
    var details = target && (target.tagName === "DETAILS" ? target : target.querySelector("details"));
    if (details) details.open = true;
  }
  window.addEventListener("hashchange", openTarget);
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  });

  document.addEventListener("DOMContentLoaded", function () {
    openTarget();
    // The table of contents starts closed (phones); in the wide layout it is a side column, so open it there.
    var toc = document.querySelector("[data-toc-details]");
    var wide = window.matchMedia && window.matchMedia("(min-width: 64rem)");
    if (toc && wide) {
      var follow = function () { toc.open = wide.matches; };
      follow();
      wide.addEventListener("change", follow);
    }
    var button = document.querySelector("[data-theme-toggle]");
    if (!button) return;
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
