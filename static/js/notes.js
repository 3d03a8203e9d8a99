// The notes box. htmx posts the form (debounced by its hx-trigger); this file adds only what htmx cannot:
// the "Saving…" state, errors that stay visible and retry with the text kept, the saved time in the
// learner's own clock, the size-limit hint, and a last save through sendBeacon when the page is left.
(function () {
  "use strict";
  var RETRY_DELAYS_MS = [2000, 5000, 10000, 30000];

  function notesForm(elt) {
    return elt && elt.closest ? elt.closest("form[data-notes-form]") : null;
  }

  function state(form) {
    if (!form._notes) {
      var editor = form.querySelector("textarea[name=body]");
      // Saved is what the page was rendered with (the textarea's default), not its value now: that also holds
      // whatever was typed before this script ran, which the server does not have yet.
      form._notes = { editor: editor, saved: editor.defaultValue, sending: null, beaconed: null, failures: 0, timer: null };
    }
    return form._notes;
  }

  function showStatus(modifier, text) {
    var status = document.getElementById("note-status");
    if (!status) return;
    var span = document.createElement("span");
    span.className = "notes__state notes__state--" + modifier;
    span.textContent = text;
    status.replaceChildren(span);
  }

  function localiseTimes(root) {
    root.querySelectorAll("time[data-local-time]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when.getTime())) {
        el.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
      }
    });
  }

  function syncLimitHint(form) {
    var hint = form.querySelector("[data-notes-limit]");
    var editor = state(form).editor;
    if (hint && editor.maxLength > 0) hint.hidden = editor.value.length < editor.maxLength;
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = notesForm(event.detail.elt);
    if (!form) return;
    var s = state(form);
    clearTimeout(s.timer);
    s.sending = s.editor.value;
    showStatus("saving", "Saving…");
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    if (!notesForm(event.detail.elt)) return;
    // 422 (too long) and 401 (signed out) carry a message written for the learner: show it.
    var code = event.detail.xhr.status;
    if (code === 422 || code === 401) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var form = notesForm(event.detail.elt);
    if (!form) return;
    var s = state(form);
    var code = event.detail.xhr ? event.detail.xhr.status : 0;
    if (code === 200) {
      s.saved = s.sending;
      s.failures = 0;
      localiseTimes(form);
      return;
    }
    if (code === 422 || code === 401) return;
    if (code === 403) {
      showStatus("error", "Not saved: your session changed (signed out or in elsewhere). Your text is still here; copy it, then reload the page.");
      return;
    }
    var delay = RETRY_DELAYS_MS[Math.min(s.failures, RETRY_DELAYS_MS.length - 1)];
    s.failures += 1;
    showStatus("error", "Not saved: the server could not be reached. Your text is still here; trying again in " + Math.round(delay / 1000) + " s.");
    s.timer = setTimeout(function () {
      if (s.editor.value !== s.saved) form.requestSubmit();
    }, delay);
  });

  function saveOnLeave() {
    document.querySelectorAll("form[data-notes-form]").forEach(function (form) {
      var s = state(form);
      var text = s.editor.value;
      if (text === s.saved || text === s.beaconed || !navigator.sendBeacon) return;
      var data = new FormData(form); // carries csrfmiddlewaretoken: a beacon cannot set headers
      data.append("beacon", "1");
      if (navigator.sendBeacon(form.action, data)) s.beaconed = text;
    });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") saveOnLeave();
  });
  window.addEventListener("pagehide", saveOnLeave);

  document.addEventListener("input", function (event) {
    var form = notesForm(event.target);
    if (form) syncLimitHint(form);
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-notes-form]").forEach(function (form) {
      var s = state(form);
      syncLimitHint(form);
      localiseTimes(form);
      // Text typed before the scripts ran: htmx took it as the box's starting value, so only a next keystroke
      // would have saved it. Save it now (htmx wired the form on this same event, just before this handler).
      if (s.editor.value !== s.saved && window.htmx) {
        setTimeout(function () { window.htmx.trigger(form, "submit"); }, 0);
      }
    });
  });
})();
