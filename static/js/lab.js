// The lab panel's client side: only what htmx cannot do. The server renders every number; this file keeps
// pushes from going backwards, falls back to polling when the WebSocket cannot connect, runs countdowns and
// the chart between pushes, and adds keyboard and clipboard conveniences. Everything works without it.
(function () {
  "use strict";

  var root = document.documentElement;
  root.classList.add("lab-js");

  var POLL_MS = 1000;
  var CHART_WINDOW_MS = 30000;
  var reducedMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  var clockSkewMs = 0; // server clock minus this browser's clock, from the latest versions partial
  var history = []; // [{t, w, r}] sampled write and read versions, for the chart
  var socketOpen = false;
  var replayTimer = null;

  function $(id) { return document.getElementById(id); }
  function lab() { return $("lab"); }

  function versions() {
    var el = $("lab-versions");
    if (!el) return null;
    return {
      stamp: Number(el.dataset.stamp || 0),
      serverNow: Number(el.dataset.serverNow || 0),
      write: Number(el.dataset.writeVersion || 0),
      read: Number(el.dataset.readVersion || 0),
      lag: el.dataset.lag,
      interval: el.dataset.interval
    };
  }

  // ---- ordering: a partial older than what the page shows is dropped --------------------------------
  var IGNORED_ATTRIBUTES = { "data-stamp": true, "hx-swap-oob": true };

  function attributesOf(el) {
    var out = {};
    for (var i = 0; i < el.attributes.length; i++) {
      var a = el.attributes[i];
      if (!IGNORED_ATTRIBUTES[a.name]) out[a.name] = a.value;
    }
    return out;
  }

  function sameExceptStamp(current, incoming) {
    if (current.tagName !== incoming.tagName || current.innerHTML !== incoming.innerHTML) return false;
    var a = attributesOf(current), b = attributesOf(incoming);
    var keys = Object.keys(a);
    if (keys.length !== Object.keys(b).length) return false;
    for (var i = 0; i < keys.length; i++) if (a[keys[i]] !== b[keys[i]]) return false;
    return true;
  }

  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var target = evt.detail.target;
    var incoming = evt.detail.fragment;
    if (!target || !incoming || !target.closest || !target.closest("#lab")) return;
    var incomingEl = incoming.nodeType === 11 ? incoming.firstElementChild : incoming;
    var oldStamp = Number(target.getAttribute("data-stamp") || 0);
    var newStamp = incomingEl ? Number(incomingEl.getAttribute("data-stamp") || 0) : 0;
    if (newStamp && oldStamp && newStamp < oldStamp) { evt.detail.shouldSwap = false; return; }
    // A part that would come back exactly as it is only moves its stamp: no swap, no re-processing, nothing
    // re-announced to screen readers. Most of a push is unchanged parts, and the first push after loading is
    // the page itself.
    if (incomingEl && sameExceptStamp(target, incomingEl)) {
      if (newStamp) target.setAttribute("data-stamp", String(newStamp));
      evt.detail.shouldSwap = false;
      return;
    }
    // A learner paging or filtering the log keeps their view; pushes render the newest page only.
    if (target.id === "lab-event-log" && (target.dataset.page !== "1" || target.dataset.filter)) {
      evt.detail.shouldSwap = false;
      return;
    }
    // Never pull a field out from under a learner's fingers.
    var active = document.activeElement;
    if (active && target.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName) && active.type !== "hidden") {
      evt.detail.shouldSwap = false;
    }
  });

  // Bad input (400), a conflict (409), a full sandbox (422) and a spent session (429) carry a message meant to be shown.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var status = evt.detail.xhr && evt.detail.xhr.status;
    if (status === 400 || status === 409 || status === 422 || status === 429) {
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
    }
  });

  // ---- live connection status and the polling fallback ------------------------------------------------
  function setLiveStatus(kind, text) {
    var status = document.querySelector("[data-live-status]");
    if (!status) return;
    status.dataset.state = kind;
    var span = status.querySelector("[data-live-text]");
    if (span && span.textContent !== text) span.textContent = text;
  }

  function startPolling() {
    var panel = lab();
    if (!panel || $("lab-poller") || !window.htmx) return;
    var poller = document.createElement("div");
    poller.id = "lab-poller";
    poller.hidden = true;
    poller.setAttribute("hx-get", panel.dataset.stateUrl);
    poller.setAttribute("hx-trigger", "every " + POLL_MS / 1000 + "s");
    poller.setAttribute("hx-swap", "none");
    panel.appendChild(poller);
    window.htmx.process(poller);
    setLiveStatus("polling", "Live connection unavailable: refreshing every second instead.");
  }

  function stopPolling() {
    var poller = $("lab-poller");
    if (poller) poller.remove();
  }

  // While the socket is open a command needs only its own outcome back: the push after its commit brings the
  // rest, so the request (and the push competing with it for the server's CPU) stays short.
  document.addEventListener("htmx:configRequest", function (evt) {
    if (socketOpen && evt.detail.elt && evt.detail.elt.id === "lab-command-form") {
      evt.detail.headers["X-Lab-Live"] = "1";
    }
  });

  document.addEventListener("htmx:wsConnecting", function () {
    if (!socketOpen && !$("lab-poller")) setLiveStatus("connecting", "Connecting live updates…");
  });
  document.addEventListener("htmx:wsOpen", function () {
    socketOpen = true;
    stopPolling();
    setLiveStatus("live", "Live: updates arrive as they happen.");
  });
  document.addEventListener("htmx:wsClose", function () {
    socketOpen = false;
    startPolling();
  });
  document.addEventListener("htmx:wsError", function () {
    if (!socketOpen) startPolling();
  });

  // ---- after any swap: resync clock, chart sample, controls the server changed ------------------------
  function afterVersions() {
    var v = versions();
    if (!v) return;
    if (v.serverNow) clockSkewMs = v.serverNow - Date.now();
    sample();
    syncInput($("lab-lag"), v.lag, showLag);
    syncInput($("lab-interval"), v.interval, null);
    var tt = $("lab-tt");
    if (tt) {
      var max = String(v.write);
      if (tt.max !== max) {
        var wasAtHead = tt.value === tt.max;
        tt.max = max;
        if (Number(tt.value) > v.write || (wasAtHead && document.activeElement !== tt && !recentlyEdited(tt))) {
          // A slider left at "now" keeps showing now: follow the head and fetch its state.
          tt.value = max;
          showTimeTravel(tt);
          if (window.htmx && tt.form) window.htmx.trigger(tt.form, "submit");
        }
      }
    }
  }

  document.addEventListener("htmx:afterSettle", afterVersions);
  document.addEventListener("htmx:wsAfterMessage", afterVersions);
  document.addEventListener("htmx:oobAfterSwap", function (evt) {
    if (evt.detail.target && evt.detail.target.id === "lab-versions") afterVersions();
  });
  document.addEventListener("htmx:load", function (evt) {
    if (evt.detail.elt && evt.detail.elt.id === "lab") { history = []; setupTabs(); afterVersions(); }
  });

  // ---- inputs: slider read-outs, presets ----------------------------------------------------------------
  function showLag(input) {
    var out = $("lab-lag-output");
    var text = Number(input.value).toFixed(1) + " s";
    if (out) out.textContent = text;
    input.setAttribute("aria-valuetext", Number(input.value).toFixed(1) + " seconds");
  }

  function showTimeTravel(input) {
    var out = $("lab-tt-output");
    if (out) out.textContent = "v=" + input.value;
  }

  // A value the learner just set is on its way to the server: a push rendered before it lands must not undo it.
  var EDIT_GRACE_MS = 3000;
  function recentlyEdited(input) {
    return Date.now() - Number(input.dataset.editedAt || 0) < EDIT_GRACE_MS;
  }

  // Follow a setting changed elsewhere (another tab), unless the learner is at this control right now.
  function syncInput(input, serverValue, show) {
    if (!input || serverValue === undefined) return;
    if (Number(input.value) === Number(serverValue)) { delete input.dataset.editedAt; return; }
    if (document.activeElement === input) return;
    if (recentlyEdited(input)) { setTimeout(afterVersions, EDIT_GRACE_MS); return; }
    input.value = serverValue;
    if (show) show(input);
  }

  document.addEventListener("input", function (evt) {
    if (evt.target.dataset) evt.target.dataset.editedAt = String(Date.now());
    if (evt.target.id === "lab-lag") showLag(evt.target);
    if (evt.target.id === "lab-tt") showTimeTravel(evt.target);
  });

  document.addEventListener("click", function (evt) {
    var chip = evt.target.closest && evt.target.closest("[data-amount]");
    if (chip) {
      var amount = $("lab-amount");
      if (amount) { amount.value = chip.dataset.amount; amount.focus(); }
      return;
    }
    var copy = evt.target.closest && evt.target.closest("[data-copy-target]");
    if (copy) { copyJson(copy); return; }
    var tab = evt.target.closest && evt.target.closest("[data-tab-target]");
    if (tab) { selectTab(tab.dataset.tabTarget, false); return; }
    var replayButton = evt.target.closest && evt.target.closest("[data-replay]");
    if (replayButton && replayButton.tagName === "BUTTON") replayAction(replayButton.dataset.replay);
  });

  // ---- copy as JSON --------------------------------------------------------------------------------------
  function copyJson(button) {
    var source = $(button.dataset.copyTarget);
    var status = button.parentElement.querySelector("[data-copy-status]");
    if (!source) return;
    var text = source.textContent;
    function fallback() {
      // No clipboard permission (or an insecure origin): select the JSON so the learner can copy it.
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      source.focus();
      if (status) status.textContent = "Selected: press Ctrl+C (⌘C on a Mac) to copy.";
    }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(function () {
        if (status) status.textContent = "Copied to the clipboard.";
      }, fallback);
    } else {
      fallback();
    }
  }

  // ---- countdowns: the server is the truth, this only counts down between pushes ----------------------
  function tickCountdowns() {
    var now = Date.now() + clockSkewMs;
    var items = document.querySelectorAll("#lab .lab-countdown[data-due-ms]");
    for (var i = 0; i < items.length; i++) {
      var el = items[i];
      var left = Number(el.dataset.dueMs) - now;
      var prefix = el.dataset.prefix || "applies in ";
      var text = left > 0 ? prefix + (left / 1000).toFixed(1) + " s" : "applying now…";
      if (el.textContent !== text) el.textContent = text;
    }
  }
  setInterval(tickCountdowns, 100);

  // ---- chart: write and read versions over time -----------------------------------------------------------
  function sample() {
    var v = versions();
    if (!v) return;
    var t = Date.now();
    var last = history[history.length - 1];
    if (last && last.w === v.write && last.r === v.read && t - last.t < 200) return;
    history.push({ t: t, w: v.write, r: v.read });
    while (history.length && history[0].t < t - CHART_WINDOW_MS - 1000) history.shift();
  }

  function drawChart() {
    var write = $("lab-chart-write");
    var read = $("lab-chart-read");
    if (!write || !read || document.hidden) return;
    sample();
    var now = Date.now();
    var start = now - CHART_WINDOW_MS;
    var maxV = 1;
    for (var i = 0; i < history.length; i++) maxV = Math.max(maxV, history[i].w, history[i].r);
    function points(key) {
      // Step lines: a version holds until the next sample.
      var out = [];
      var prev = null;
      for (var j = 0; j < history.length; j++) {
        var x = Math.max(0, ((history[j].t - start) / CHART_WINDOW_MS) * 320);
        var y = 100 - (history[j][key] / maxV) * 90;
        if (prev !== null) out.push(x.toFixed(1) + "," + prev);
        out.push(x.toFixed(1) + "," + y.toFixed(1));
        prev = y.toFixed(1);
      }
      if (prev !== null) out.push("320," + prev);
      return out.join(" ");
    }
    write.setAttribute("points", points("w"));
    read.setAttribute("points", points("r"));
  }
  setInterval(drawChart, reducedMotion ? 1000 : 250);

  // ---- phone tabs: Write | Log | Read ------------------------------------------------------------------------
  function selectTab(name, focus) {
    var panel = lab();
    if (!panel) return;
    panel.dataset.tab = name;
    var tabs = panel.querySelectorAll("[data-tab-target]");
    for (var i = 0; i < tabs.length; i++) {
      var on = tabs[i].dataset.tabTarget === name;
      tabs[i].setAttribute("aria-selected", on ? "true" : "false");
      tabs[i].tabIndex = on ? 0 : -1;
      if (on && focus) tabs[i].focus();
    }
  }

  function setupTabs() {
    var panel = lab();
    if (panel) selectTab(panel.dataset.tab || "write", false);
  }

  document.addEventListener("keydown", function (evt) {
    var tab = evt.target.closest && evt.target.closest("[data-tab-target]");
    if (tab && (evt.key === "ArrowRight" || evt.key === "ArrowLeft" || evt.key === "Home" || evt.key === "End")) {
      var names = ["write", "log", "read"];
      var i = names.indexOf(tab.dataset.tabTarget);
      if (evt.key === "ArrowRight") i = (i + 1) % names.length;
      if (evt.key === "ArrowLeft") i = (i + names.length - 1) % names.length;
      if (evt.key === "Home") i = 0;
      if (evt.key === "End") i = names.length - 1;
      selectTab(names[i], true);
      evt.preventDefault();
      return;
    }
    var widget = evt.target.closest && evt.target.closest("#lab-replay-widget");
    if (!widget) return;
    var tag = evt.target.tagName;
    if (evt.key === " " && (evt.target === widget || tag === "A")) {
      replayAction("play");
      evt.preventDefault();
    } else if ((evt.key === "ArrowRight" || evt.key === "ArrowLeft") && tag !== "SELECT" && tag !== "INPUT") {
      stopReplay();
      replayAction(evt.key === "ArrowRight" ? "forward" : "back");
      evt.preventDefault();
    }
  });

  // ---- step-through replay ----------------------------------------------------------------------------------
  function replayState() {
    var frame = $("lab-replay");
    var v = versions();
    return {
      at: frame ? Number(frame.dataset.version || 0) : 0,
      max: v ? v.write : frame ? Number(frame.dataset.max || 0) : 0
    };
  }

  function showReplay(version) {
    var panel = lab();
    if (!panel || !window.htmx) return Promise.resolve();
    return window.htmx.ajax("GET", panel.dataset.replayUrl + "?replay=" + version, {
      target: "#lab-replay",
      swap: "outerHTML"
    });
  }

  function playButton() { return document.querySelector('#lab-replay-widget [data-replay="play"]'); }

  function stopReplay() {
    if (replayTimer) { clearTimeout(replayTimer); replayTimer = null; }
    var button = playButton();
    if (button) { button.setAttribute("aria-pressed", "false"); button.textContent = "▶ Play"; }
  }

  function speed() {
    var select = $("lab-replay-speed");
    return select ? Number(select.value) || 1 : 1;
  }

  function playStep() {
    var s = replayState();
    if (s.at >= s.max) { stopReplay(); return; }
    showReplay(s.at + 1).then(function () {
      if (replayTimer !== null) replayTimer = setTimeout(playStep, 1000 / speed());
    });
  }

  function replayAction(action) {
    var s = replayState();
    if (action === "back") { stopReplay(); showReplay(Math.max(0, s.at - 1)); }
    else if (action === "forward") { stopReplay(); showReplay(Math.min(s.max, s.at + 1)); }
    else if (action === "play") {
      if (replayTimer) { stopReplay(); return; }
      var button = playButton();
      if (button) { button.setAttribute("aria-pressed", "true"); button.textContent = "❚❚ Pause"; }
      // From the end, a new play starts over at the empty account.
      var start = s.at >= s.max ? showReplay(0) : Promise.resolve();
      replayTimer = -1;
      start.then(function () { if (replayTimer !== null) replayTimer = setTimeout(playStep, 1000 / speed()); });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupTabs();
    afterVersions();
    tickCountdowns();
    // With no WebSocket support at all the extension never fires an event: poll from the start.
    if (!("WebSocket" in window)) startPolling();
  });
})();
