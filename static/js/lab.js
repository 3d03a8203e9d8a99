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

  // The marks lab.js puts on log rows (pending, being folded) are not the server's: compare without them.
  var JS_MARKS = ["lab-log__row--pending", "lab-log__row--folding"];
  function serverHtml(el) {
    if (!el.querySelector("." + JS_MARKS.join(", ."))) return el.innerHTML;
    var copy = el.cloneNode(true);
    var marked = copy.querySelectorAll("." + JS_MARKS.join(", ."));
    for (var i = 0; i < marked.length; i++) {
      marked[i].classList.remove.apply(marked[i].classList, JS_MARKS);
      marked[i].removeAttribute("aria-current");
    }
    return copy.innerHTML;
  }

  function sameExceptStamp(current, incoming) {
    if (current.tagName !== incoming.tagName || serverHtml(current) !== incoming.innerHTML) return false;
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
    // The server refused a body over its cap before reading it: say so where the answer would have gone.
    if (status === 413) {
      evt.detail.shouldSwap = false;
      var slot = evt.detail.target;
      if (slot && slot.id === "lab") slot = $("lab-reset-result"); // an import answers beside the Sandbox tool
      if (slot) {
        slot.className = "lab-result lab-result--bad";
        slot.textContent = "✗ That was too large to send (the limit is 64 KiB); nothing was changed.";
      }
      return;
    }
    if (status === 400 || status === 409 || status === 422 || status === 429) {
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
    }
    // The database could not answer (503): keep the page as it is, say why where the answer would have gone
    // (never over the whole panel), and ask for the state again once Retry-After has passed.
    if (status === 503) {
      evt.detail.shouldSwap = false;
      var said = new DOMParser().parseFromString(evt.detail.serverResponse || "", "text/html").body.textContent;
      said = (said || "").replace(/\s+/g, " ").trim() || "The database is unavailable; retrying shortly.";
      var into = evt.detail.target;
      if (into && into.id !== "lab" && into.id !== "lab-poller") {
        into.className = "lab-result lab-result--bad";
        into.textContent = "✗ " + said;
      }
      setLiveStatus("retrying", said);
      retryStateAfter(Number(evt.detail.xhr.getResponseHeader("Retry-After")) || 5);
    }
  });

  var stateRetry = null;
  function retryStateAfter(seconds) {
    if (stateRetry || !window.htmx || !lab()) return;
    stateRetry = window.setTimeout(function () {
      stateRetry = null;
      window.htmx.ajax("GET", lab().dataset.stateUrl, { source: lab(), target: lab(), swap: "none" }).then(function () {
        if (stateRetry) return; // answered 503 again: the next retry is already set
        if (socketOpen) setLiveStatus("live", "Live: updates arrive as they happen.");
        else if ($("lab-poller")) setLiveStatus("polling", "Live connection unavailable: refreshing every second instead.");
      });
    }, Math.min(seconds, 300) * 1000);
  }

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
    closedForGood = false; // a new panel (after a reset, say) opened a socket of its own
    stopPolling();
    setLiveStatus("live", "Live: updates arrive as they happen.");
  });
  // Close codes the server uses on purpose (lab/consumers.py). A page opened before its visitor had a session is
  // asked to reconnect once the first command made one (the new socket carries its cookie); a page closed because
  // too many are open keeps the reason the server pushed just before, and neither polls nor reconnects.
  var CLOSE_RECONNECT = 4012, CLOSE_TOO_MANY_PAGES = 4429;
  var requestsInFlight = 0, whenIdle = null, closedForGood = false;
  document.addEventListener("htmx:beforeRequest", function () { requestsInFlight++; });
  document.addEventListener("htmx:afterRequest", function () {
    requestsInFlight = Math.max(0, requestsInFlight - 1);
    if (!requestsInFlight && whenIdle) { var go = whenIdle; whenIdle = null; go(); }
  });
  document.addEventListener("htmx:wsClose", function (evt) {
    socketOpen = false;
    var code = evt.detail && evt.detail.event && evt.detail.event.code;
    var socket = evt.detail && evt.detail.socketWrapper;
    if (code === CLOSE_TOO_MANY_PAGES) { closedForGood = true; stopPolling(); return; }
    if (code === CLOSE_RECONNECT && socket) {
      setLiveStatus("connecting", "Connecting live updates…");
      // After the answer to the request that made the session: its cookie must be set before the new socket opens.
      var reconnect = function () { socket.reconnect(); };
      if (requestsInFlight) whenIdle = reconnect; else setTimeout(reconnect, 250);
      return;
    }
    startPolling();
  });
  document.addEventListener("htmx:wsError", function () {
    if (!socketOpen && !closedForGood) startPolling();
  });

  // ---- after any swap: resync clock, chart sample, controls the server changed ------------------------
  // Scroll the log's own box (never the page) so the row being folded stays visible.
  function keepInView(row) {
    var box = $("lab-event-log");
    if (!box || box.scrollHeight <= box.clientHeight) return;
    var top = row.offsetTop - box.offsetTop, bottom = top + row.offsetHeight;
    if (top < box.scrollTop) box.scrollTop = top;
    else if (bottom > box.scrollTop + box.clientHeight) box.scrollTop = bottom - box.clientHeight;
  }

  // The event a rebuild or the retro model's catch-up is folding right now is highlighted in the log.
  function markFold() {
    var source = $("lab-rebuild"), retro = $("lab-retro"), replay = $("lab-replay");
    var replayOpen = replay && replay.closest("details") && replay.closest("details").open;
    var version = (source && source.dataset.foldVersion) || (retro && retro.dataset.foldVersion) ||
      (replayOpen && replay.dataset.version !== "0" ? replay.dataset.version : "") || "";
    var rows = document.querySelectorAll("#lab-event-log [data-testid=event-row]");
    var v = versions();
    for (var i = 0; i < rows.length; i++) {
      // Dashed while the read model has not applied it yet. Set here, not by the server: the log is not part of
      // the read side's pushes, so a server-drawn mark would go stale.
      rows[i].classList.toggle("lab-log__row--pending", !!v && Number(rows[i].dataset.version) > v.read);
      var on = version !== "" && rows[i].dataset.version === version;
      rows[i].classList.toggle("lab-log__row--folding", on);
      if (on) { rows[i].setAttribute("aria-current", "step"); keepInView(rows[i]); } else rows[i].removeAttribute("aria-current");
    }
  }

  // ---- missions: tools appear as their mission arrives; "Show all tools" reveals everything -----------------
  var ALL_TOOLS_KEY = "reqflow-all-tools";
  var allTools = false; // remembered in this browser, so a learner who knows the pattern is never made to wait
  try { allTools = localStorage.getItem(ALL_TOOLS_KEY) === "1"; } catch (e) { allTools = false; }

  function applyReveal() {
    var missions = $("lab-missions"), panel = lab();
    if (!missions || !panel) return;
    var revealed = (missions.dataset.revealed || "").split(" ");
    var tools = panel.querySelectorAll("[data-tool]");
    for (var i = 0; i < tools.length; i++) {
      tools[i].classList.toggle("lab-locked", revealed.indexOf(tools[i].dataset.tool) < 0);
    }
    if (allTools) panel.setAttribute("data-all-tools", ""); else panel.removeAttribute("data-all-tools");
    var button = panel.querySelector("[data-show-all]");
    if (button) {
      button.setAttribute("aria-pressed", allTools ? "true" : "false");
      button.textContent = allTools ? "Show tools one mission at a time" : "Show all tools";
    }
  }

  function toggleAllTools() {
    allTools = !allTools;
    try { localStorage.setItem(ALL_TOOLS_KEY, allTools ? "1" : "0"); } catch (e) { /* private mode: this page */ }
    applyReveal();
  }

  // "Copy link": the situation for another learner's own sandbox, with the time-travel slider where it is now.
  function copyShareLink(button) {
    var url = new URL(button.dataset.shareUrl || "#lab", location.href);
    var tt = $("lab-tt");
    if (tt && tt.value !== tt.max) url.searchParams.set("tt", tt.value);
    var status = document.querySelector("[data-share-status]");
    var text = url.toString();
    function shown(message) { if (status) status.textContent = message; }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(function () { shown("Link copied."); }, function () { shown(text); });
    } else {
      shown(text);
    }
  }

  function afterVersions() {
    applyReveal();
    markFold();
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
          // Sent as a follow, not a travel: the missions count only the learner's own time travel.
          var panel = lab();
          if (window.htmx && panel) {
            window.htmx.ajax("GET", panel.dataset.timeTravelUrl + "?follow=1&tt=" + max, {
              target: "#lab-time-travel-state", swap: "outerHTML"
            });
          }
        }
      }
    }
  }

  document.addEventListener("htmx:afterSettle", afterVersions);
  // Opening or closing the replay tool turns its highlight in the log on or off (toggle does not bubble).
  document.addEventListener("toggle", function (evt) {
    if (evt.target && evt.target.id === "lab-replay-section") markFold();
  }, true);
  document.addEventListener("htmx:wsAfterMessage", afterVersions);
  document.addEventListener("htmx:oobAfterSwap", function (evt) {
    if (evt.detail.target && evt.detail.target.id === "lab-versions") afterVersions();
  });
  document.addEventListener("htmx:load", function (evt) {
    if (evt.detail.elt && evt.detail.elt.id === "lab") {
      // A tool the server marked open (the one that answered) may arrive closed: details of one name are exclusive,
      // and htmx inserts the new lab before removing the old one, whose open tool then wins.
      var reopen = evt.detail.elt.querySelectorAll("details[data-reopen]");
      for (var k = 0; k < reopen.length; k++) reopen[k].open = true;
      setupTabs(); afterVersions(); loadHistory();
      // A scenario just loaded: open the tool it points at and bring its sentence into view.
      var loaded = $("lab-scenario-result");
      if (loaded && loaded.textContent.trim()) {
        var target = loaded.dataset.openTool && $(loaded.dataset.openTool);
        if (target && target.tagName === "DETAILS") target.open = true;
        loaded.tabIndex = -1;
        loaded.focus();
        evt.detail.elt.scrollIntoView({ block: "start", behavior: reducedMotion ? "auto" : "smooth" });
        return;
      }
      // After a reset or its undo the whole lab is new: keep focus in it, on what the learner can do next.
      var next = document.querySelector('#lab [data-testid="reset-undo"]') || document.querySelector("#lab-reset-result:not(:empty)");
      if (next && document.activeElement === document.body) { if (!next.hasAttribute("tabindex") && next.tagName !== "BUTTON") next.tabIndex = -1; next.focus(); }
    }
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
    var showAll = evt.target.closest && evt.target.closest("[data-show-all]");
    if (showAll) { toggleAllTools(); return; }
    var share = evt.target.closest && evt.target.closest('[data-testid="copy-link"]');
    if (share) { copyShareLink(share); return; }
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

  // ---- countdowns and tokens: the server is the truth, this only moves them between pushes -----------
  function tickCountdowns() {
    var now = Date.now() + clockSkewMs;
    var items = document.querySelectorAll("#lab .lab-countdown[data-due-ms]");
    for (var i = 0; i < items.length; i++) {
      var el = items[i];
      var left = Number(el.dataset.dueMs) - now;
      var prefix = el.dataset.prefix || "applies in ";
      var text = left > 0 ? prefix + (left / 1000).toFixed(1) + " s" + (el.dataset.suffix || "") : (el.dataset.done || "applying now…");
      if (el.textContent !== text) el.textContent = text;
    }
    moveTokens(now);
  }

  // A token's place on the track is the share of its lag already spent: 0 when appended, 1 when due. It stops
  // at the end until a push says the read model applied it, so what moves never runs ahead of the server.
  function moveTokens(now) {
    var tokens = document.querySelectorAll("#lab .lab-track__lane .lab-token[data-due-ms]");
    for (var i = 0; i < tokens.length; i++) {
      var t = tokens[i];
      var start = Number(t.dataset.recordedMs), due = Number(t.dataset.dueMs);
      var p = due > start ? (now - start) / (due - start) : 1;
      p = Math.max(0, Math.min(1, p));
      if (reducedMotion) p = Math.round(p * 4) / 4; // a few still positions instead of a glide
      t.style.setProperty("--p", p.toFixed(3));
    }
  }
  setInterval(tickCountdowns, reducedMotion ? 1000 : 100);

  // ---- read your writes: the wait is shown while it happens ------------------------------------------------
  var rywTimer = null;
  function rywBox() { return $("lab-ryw-wait"); }

  document.addEventListener("htmx:beforeRequest", function (evt) {
    var form = evt.detail.elt;
    if (!form || !form.classList || !form.classList.contains("lab-query")) return;
    var box = rywBox(), ryw = $("lab-ryw"), v = versions();
    if (!box) return;
    if (rywTimer) { clearInterval(rywTimer); rywTimer = null; }
    if (!ryw || !ryw.checked || !v) { box.hidden = true; return; }
    var started = Date.now(), wanted = v.write;
    var show = function () {
      var read = versions() ? versions().read : 0;
      box.textContent = "Waiting for the read model to reach v=" + wanted + " (now v=" + read + ") … " +
        ((Date.now() - started) / 1000).toFixed(1) + " s";
    };
    box.hidden = false;
    show();
    rywTimer = setInterval(show, 100);
    box.dataset.started = String(started);
    box.dataset.wanted = String(wanted);
  });

  document.addEventListener("htmx:afterRequest", function (evt) {
    var form = evt.detail.elt;
    if (!form || !form.classList || !form.classList.contains("lab-query") || !rywTimer) return;
    clearInterval(rywTimer);
    rywTimer = null;
    var box = rywBox();
    if (box) {
      box.textContent = "Waited " + ((Date.now() - Number(box.dataset.started)) / 1000).toFixed(1) +
        " s for v=" + box.dataset.wanted + ": the answer is below.";
    }
  });

  // ---- chart: write and read versions over time, with a marker per event and a bracket for the lag ------
  var SVG_NS = "http://www.w3.org/2000/svg";
  var X0 = 34, X1 = 314, Y0 = 104, Y1 = 14; // the plot area inside the axes (viewBox units)

  // The server's history (events' times for the write line, applied times for the read line) seeds the chart,
  // so a reload keeps it; samples taken from pushes extend it.
  function loadHistory() {
    history = [];
    var el = $("lab-chart");
    var data = null;
    try { data = el && el.dataset.series ? JSON.parse(el.dataset.series) : null; } catch (e) { data = null; }
    if (!data || !data.write) return;
    var points = [];
    data.write.forEach(function (p) { points.push({ t: p[0] - clockSkewMs, kind: "w", v: p[1] }); });
    (data.read || []).forEach(function (p) { points.push({ t: p[0] - clockSkewMs, kind: "r", v: p[1] }); });
    points.sort(function (a, b) { return a.t - b.t; });
    var w = data.write_before || 0, r = data.read_before || 0;
    // Each line is exact from its `since` (a capped line starts later); the version before it holds until then.
    var since = Math.min(data.write_since || data.now, data.read_since || data.now) - clockSkewMs;
    history.push({ t: Math.min(since, Date.now() - CHART_WINDOW_MS - 1000), w: w, r: r });
    points.forEach(function (p) {
      if (p.kind === "w") w = Math.max(w, p.v); else r = Math.max(r, p.v);
      history.push({ t: p.t, w: w, r: r });
    });
  }

  function sample() {
    var v = versions();
    if (!v) return;
    var t = Date.now();
    var last = history[history.length - 1];
    if (last && v.write < last.w) { history = []; last = null; } // a reset moved the page to a new sandbox
    if (last && last.w === v.write && last.r === v.read && t - last.t < 200) return;
    history.push({ t: t, w: v.write, r: v.read });
    while (history.length > 1 && history[1].t < t - CHART_WINDOW_MS - 1000) history.shift();
  }

  function svgEl(name, attrs, text) {
    var el = document.createElementNS(SVG_NS, name);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (text) el.textContent = text;
    return el;
  }

  function drawChart() {
    var write = $("lab-chart-write"), read = $("lab-chart-read");
    if (!write || !read || document.hidden) return;
    sample();
    var now = Date.now(), start = now - CHART_WINDOW_MS, maxV = 1;
    for (var i = 0; i < history.length; i++) maxV = Math.max(maxV, history[i].w, history[i].r);
    var x = function (t) { return X0 + Math.max(0, (t - start) / CHART_WINDOW_MS) * (X1 - X0); };
    var y = function (v) { return Y0 - (v / maxV) * (Y0 - Y1); };
    function points(key) {
      var out = [], prev = null; // step lines: a version holds until the next sample
      for (var j = 0; j < history.length; j++) {
        var px = x(history[j].t).toFixed(1), py = y(history[j][key]).toFixed(1);
        if (prev !== null) out.push(px + "," + prev);
        out.push(px + "," + py);
        prev = py;
      }
      if (prev !== null) out.push(X1 + "," + prev);
      return out.join(" ");
    }
    write.setAttribute("points", points("w"));
    read.setAttribute("points", points("r"));
    var ymax = $("lab-chart-ymax");
    if (ymax && ymax.textContent !== "v=" + maxV) ymax.textContent = "v=" + maxV;
    drawMarks(x, y);
    drawBracket(x, y, now);
  }

  // One dot per write step inside the window: each is an event appended.
  function drawMarks(x, y) {
    var g = $("lab-chart-marks");
    if (!g) return;
    while (g.firstChild) g.removeChild(g.firstChild);
    for (var i = 1; i < history.length; i++) {
      if (history[i].w > history[i - 1].w && history[i].t >= Date.now() - CHART_WINDOW_MS) {
        g.appendChild(svgEl("circle", { cx: x(history[i].t).toFixed(1), cy: y(history[i].w).toFixed(1), r: 2.5 }));
      }
    }
  }

  // The lag: from the newest write step to the moment the read line reached it (or now, still waiting).
  function drawBracket(x, y, now) {
    var g = $("lab-chart-bracket");
    if (!g) return;
    while (g.firstChild) g.removeChild(g.firstChild);
    var stepAt = -1;
    for (var i = history.length - 1; i > 0; i--) {
      if (history[i].w > history[i - 1].w) { stepAt = i; break; }
    }
    if (stepAt < 0 || history[stepAt].t < now - CHART_WINDOW_MS) return;
    var target = history[stepAt].w, tStart = history[stepAt].t, tEnd = now, waiting = true;
    for (var j = stepAt; j < history.length; j++) {
      if (history[j].r >= target) { tEnd = history[j].t; waiting = false; break; }
    }
    var xa = x(tStart), xb = Math.max(x(tEnd), xa + 2), yb = Math.max(Y1 - 4, y(target) - 7);
    g.appendChild(svgEl("path", { d: "M" + xa.toFixed(1) + " " + (yb + 4) + " v-4 H" + xb.toFixed(1) + " v4" }));
    var label = "lag " + ((tEnd - tStart) / 1000).toFixed(1) + " s" + (waiting ? "…" : "");
    // Centred over the bracket, but never past the plot's edges (the newest step is usually at the right end).
    var mid = (xa + xb) / 2, anchor = "middle";
    if (mid > X1 - 30) { mid = X1; anchor = "end"; } else if (mid < X0 + 30) { mid = X0 + 2; anchor = "start"; }
    g.appendChild(svgEl("text", { x: mid.toFixed(1), y: (yb - 2).toFixed(1), "text-anchor": anchor }, label));
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
    loadHistory();
    tickCountdowns();
    // With no WebSocket support at all the extension never fires an event: poll from the start.
    if (!("WebSocket" in window)) startPolling();
  });
})();
