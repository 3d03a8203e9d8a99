// A domain lab's client side (templates/lab/domain/lab.html): only what htmx cannot do. The server renders every
// number. This file asks for the live parts again while the read side catches up (and, slower, for what another
// tab changed), keeps a refresh from pulling a field out from under the learner's fingers, shows 4xx answers
// beside their control, and keeps the slider read-outs current. Everything works without it (plain forms).
(function () {
  "use strict";

  document.documentElement.classList.add("lab-js");

  var CATCHING_UP_MS = 300; // while the read models are behind: watch the read version move
  // Otherwise: what another tab of this session changed. Each refresh that finds nothing new waits longer (up to
  // IDLE_MAX_MS): an idle refresh still costs the server a look at the sandbox, and most open tabs sit idle.
  var IDLE_MS = 2500, IDLE_MAX_MS = 10000;
  var idleMs = IDLE_MS;
  var timer = null;
  var inFlight = false;

  function $(id) { return document.getElementById(id); }
  function root() { return $("dlab"); }

  function setStatus(text, state) {
    var el = document.querySelector("[data-refresh-status]");
    if (!el) return;
    if (el.textContent !== text) el.textContent = text;
    el.dataset.state = state;
  }

  function behind() {
    var status = $("dlab-status");
    return status ? Number(status.dataset.behind || 0) > 0 || status.dataset.state === "catching up" : false;
  }

  // While catching up: when the oldest event in flight is due (the server says in how long), else a quick beat;
  // never later than the idle pace, so a paused or stalled projection still shows another tab's changes.
  function delay() {
    var status = $("dlab-status");
    if (!behind()) return idleMs;
    var due = status && status.dataset.dueMs !== "" ? Number(status.dataset.dueMs) : NaN;
    if (isNaN(due)) return status && status.dataset.state === "catching up" ? CATCHING_UP_MS : idleMs;
    return Math.min(IDLE_MS, Math.max(CATCHING_UP_MS, due + 150));
  }

  // ---- the refresh: GET the state with the stamp the page shows; 204 when nothing changed -------------------
  function schedule() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    if (document.visibilityState === "hidden") {
      setStatus("Updates paused while this tab is hidden.", "paused");
      return;
    }
    timer = setTimeout(refresh, delay());
  }

  function refresh() {
    timer = null;
    var lab = root(), status = $("dlab-status");
    if (!lab || !window.htmx || inFlight) { schedule(); return; }
    inFlight = true;
    var url = lab.dataset.stateUrl + "?seen=" + encodeURIComponent(status ? status.dataset.stamp : "");
    window.htmx.ajax("GET", url, { source: lab, swap: "none" }).then(function () {
      inFlight = false;
      // 204: nothing changed since the stamp this page shows. Anything else: back to the quick pace.
      idleMs = lastRefreshStatus === 204 ? Math.min(IDLE_MAX_MS, Math.round(idleMs * 1.5)) : IDLE_MS;
      setStatus("Live: this page refreshes itself as the projection catches up.", "live");
      schedule();
    }, function () {
      inFlight = false;
      setStatus("Could not reach the server; trying again.", "retrying");
      schedule();
    });
  }

  var lastRefreshStatus = 0;
  document.addEventListener("htmx:afterRequest", function (evt) {
    if (evt.detail.elt === root()) lastRefreshStatus = evt.detail.xhr ? evt.detail.xhr.status : 0;
    else idleMs = IDLE_MS; // the learner acted: changes are likely, from this tab or the other
  });

  document.addEventListener("visibilitychange", function () {
    idleMs = IDLE_MS;
    if (document.visibilityState === "visible") refresh(); else schedule();
  });

  // An answer to a command or control brings the live parts too: watch the catch-up from there.
  document.addEventListener("htmx:afterSettle", function () { if (!inFlight) schedule(); });

  // ---- a command's answer renews its form: keep the focus where the learner was (on the same button) ---------
  var focusId = null;
  document.addEventListener("htmx:beforeRequest", function (evt) {
    if (evt.detail.elt === root()) return; // the refresh, not the learner
    var active = document.activeElement;
    focusId = active && active.id && active.closest && active.closest("#dlab") ? active.id : null;
  });
  document.addEventListener("htmx:afterSettle", function () {
    var active = document.activeElement;
    if (focusId && (!active || active === document.body) && $(focusId)) $(focusId).focus();
  });

  // ---- a refresh never swaps a part the learner is typing in ------------------------------------------------
  // Except the forms in the answer to the learner's own command: they come back with the next names to pick (or,
  // refused, with what was typed), and the focus goes back to the same field.
  // Only while the learner is still at that form (or nowhere): one who has moved on to type in another keeps it.
  var answeringTheLearner = false;
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var config = evt.detail.requestConfig, active = document.activeElement;
    var sender = config && config.elt !== root() ? config.elt : null;
    answeringTheLearner = !!sender && (!active || active === document.body || sender.contains(active));
  });
  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var target = evt.detail.target, active = document.activeElement;
    if (!target || !target.closest || !target.closest("#dlab")) return;
    if (answeringTheLearner && target.id === "dlab-forms") return;
    if (active && target.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName) && active.type !== "hidden") {
      evt.detail.shouldSwap = false;
    }
  });

  // ---- 4xx answers carry the reason, meant for the slot beside the control ------------------------------------
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var status = evt.detail.xhr && evt.detail.xhr.status;
    if (status === 400 || status === 409 || status === 422 || status === 429) {
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
    } else if (status === 503 || status === 413) {
      evt.detail.shouldSwap = false;
      var slot = evt.detail.target;
      if (slot && slot.closest && slot.closest("#dlab") && slot.id !== "dlab") {
        slot.className = "lab-result dlab-result lab-result--bad";
        slot.textContent = status === 413
          ? "✗ That was too large to send; nothing was changed."
          : "✗ The server is busy or its database is unavailable; nothing was changed. Try again in a moment.";
      }
    }
  });

  // ---- slider read-outs -----------------------------------------------------------------------------------------
  function showRange(input) {
    var form = input.form, out = form && form.querySelector("output");
    if (!out) return;
    if (input.name === "lag") {
      out.textContent = Number(input.value).toFixed(1) + " s";
      input.setAttribute("aria-valuetext", Number(input.value).toFixed(1) + " seconds");
    } else {
      out.textContent = "v=" + input.value;
    }
  }

  document.addEventListener("input", function (evt) {
    if (evt.target.type === "range" && evt.target.closest("#dlab")) showRange(evt.target);
  });

  // After the status part changes (a refresh, an answer, another tab's change), the sliders follow it: time travel
  // reaches as far as the log does, and the lag shows what the server has, unless the learner is at that slider.
  var EDIT_GRACE_MS = 3000;
  document.addEventListener("input", function (evt) {
    if (evt.target.dataset) evt.target.dataset.editedAt = String(Date.now());
  });
  function followStatus() {
    var status = $("dlab-status"); // the part now in the page (the event's target is the element it replaced)
    if (!status) return;
    var slider = document.querySelector("[data-tt-version]");
    var head = Number(status.dataset.writeVersion || 0);
    if (slider && Number(slider.max) !== head) {
      var atHead = Number(slider.value) === Number(slider.max);
      slider.max = String(head);
      if (atHead && document.activeElement !== slider) { slider.value = String(head); showRange(slider); }
    }
    var lag = $("dlab-lag");
    var edited = lag && Date.now() - Number(lag.dataset.editedAt || 0) < EDIT_GRACE_MS;
    if (lag && status.dataset.lag && document.activeElement !== lag && !edited && Number(lag.value) !== Number(status.dataset.lag)) {
      lag.value = status.dataset.lag;
      showRange(lag);
    }
  }
  document.addEventListener("htmx:oobAfterSwap", function (evt) {
    if (evt.detail.target && evt.detail.target.id === "dlab-status") followStatus();
  });

  document.addEventListener("DOMContentLoaded", function () {
    if (!root()) return;
    setStatus("Live: this page refreshes itself as the projection catches up.", "live");
    schedule();
  });
})();
