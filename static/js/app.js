// PeekShot's browser wiring, loaded from /static so the Content-Security-Policy
// needs no inline script and no eval. It sends the CSRF token with every htmx
// request, runs Show/Hide and Copy for secrets, the confirmation dialog and
// toasts. Everything here is progressive: pages work without it.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function csrfToken() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }

  // htmx 4: request headers live on evt.detail.ctx.request.headers.
  document.addEventListener("htmx:config:request", function (evt) {
    var token = csrfToken();
    if (token) evt.detail.ctx.request.headers["X-CSRF-Token"] = token;
  });

  function announce(text) {
    var a = document.getElementById("announcer");
    if (!a) return;
    a.textContent = "";
    window.setTimeout(function () { a.textContent = text; }, 30);
  }

  function setLabel(button, text) {
    var span = button.querySelector("[data-label]");
    (span || button).textContent = text;
  }

  function secretOf(target) {
    if (!target) return "";
    return "value" in target && target.tagName === "INPUT" ? target.value : target.textContent;
  }

  function copyText(text, source) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Fallback for plain-http deployments, where the Clipboard API is absent:
    // copy from a temporary, off-screen text field.
    return new Promise(function (resolve, reject) {
      var ta = document.createElement("textarea");
      ta.value = text;
      ta.setAttribute("readonly", "");
      ta.className = "offscreen";
      document.body.appendChild(ta);
      ta.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      ta.remove();
      if (source && source.focus) source.focus();
      ok ? resolve() : reject(new Error("copy failed"));
    });
  }

  // Menus are details/summary disclosures (they work without JavaScript);
  // here they say whether they are open, close on Escape (focus back on
  // their button) and on a click elsewhere, and one opens at a time.
  function closeMenus(except) {
    document.querySelectorAll("details[data-menu][open]").forEach(function (d) {
      if (d !== except) d.removeAttribute("open");
    });
  }
  document.addEventListener("toggle", function (evt) {
    var d = evt.target;
    if (!d.matches || !d.matches("details[data-menu]")) return;
    var summary = d.querySelector("summary");
    if (summary) summary.setAttribute("aria-expanded", d.open ? "true" : "false");
    if (d.open) closeMenus(d);
  }, true);
  document.addEventListener("keydown", function (evt) {
    // Escape in the confirmation dialog is the dialog's own.
    if (evt.key !== "Escape" || document.querySelector("dialog[open]")) return;
    var open = evt.target.closest && evt.target.closest("details[data-menu][open]");
    if (!open) open = document.querySelector("details[data-menu][open]");
    if (!open) return;
    evt.preventDefault();
    open.removeAttribute("open");
    var summary = open.querySelector("summary");
    if (summary) summary.focus();
  });

  document.addEventListener("click", function (evt) {
    // A click in the dialog a menu's action opened leaves the menu as it is.
    if (!evt.target.closest("dialog")) closeMenus(evt.target.closest("details[data-menu]"));
    var el = evt.target.closest("[data-action]");
    if (!el) return;
    var action = el.getAttribute("data-action");
    var target = document.getElementById(el.getAttribute("data-target") || "");
    if (action === "toggle-secret" && target) {
      var show = target.type === "password";
      target.type = show ? "text" : "password";
      el.setAttribute("aria-pressed", show ? "true" : "false");
      setLabel(el, show ? "Hide" : "Show");
    } else if (action === "copy" && target) {
      copyText(secretOf(target), el).then(function () {
        el.classList.add("is-copied");
        setLabel(el, "Copied ✓");
        announce("Copied to clipboard");
        window.clearTimeout(el._copiedTimer);
        el._copiedTimer = window.setTimeout(function () {
          el.classList.remove("is-copied");
          setLabel(el, "Copy");
        }, 2000);
      }, function () {
        setLabel(el, "Press Ctrl+C");
        announce("Copy failed: select the text and press Ctrl+C");
      });
    } else if (action === "dismiss") {
      var t = el.closest(".toast");
      if (t) t.remove();
    }
  });

  // Toasts that report success fade by themselves; errors stay until dismissed.
  function scheduleToasts(root) {
    (root || document).querySelectorAll(".toast:not(.toast-error):not([data-timed])").forEach(function (t) {
      t.setAttribute("data-timed", "");
      window.setTimeout(function () { t.remove(); }, 6000);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { scheduleToasts(); });

  // Destructive actions confirm in a <dialog> rather than window.confirm.
  document.addEventListener("htmx:confirm", function (evt) {
    var src = evt.detail.ctx.sourceElement;
    var dialog = document.getElementById("confirm-dialog");
    if (!src || !dialog || !src.hasAttribute("data-confirm-body") || typeof dialog.showModal !== "function") return;
    evt.preventDefault();
    dialog.querySelector("#confirm-title").textContent = src.getAttribute("data-confirm-title") || "Are you sure?";
    dialog.querySelector("#confirm-body").textContent = src.getAttribute("data-confirm-body");
    dialog.querySelector("#confirm-ok").textContent = src.getAttribute("data-confirm-action") || "Confirm";
    dialog.returnValue = "";
    dialog.addEventListener("close", function onClose() {
      dialog.removeEventListener("close", onClose);
      if (dialog.returnValue === "confirm") {
        evt.detail.issueRequest();
      } else {
        evt.detail.dropRequest();
        if (src.focus) src.focus();
      }
    });
    dialog.showModal();
  });

  // Where focus goes when a swap takes away the focused control. A
  // deactivate or activate brings the row back under the same id: its first
  // action. A delete takes the row: the next row's, else the previous
  // row's, else the create form's label field.
  function firstControl(row) {
    return row && (row.querySelector(".actions button:not([disabled]), .actions summary") ||
      row.querySelector("button:not([disabled]), summary, a[href], input:not([type=hidden]), select"));
  }
  function keyRow(el) { return el && el.closest && el.closest("tr[data-key-id]"); }
  function siblingRow(row, dir) {
    var r = row[dir];
    while (r && !r.hasAttribute("data-key-id")) r = r[dir];
    return r;
  }
  function focusPlan(src) {
    var row = keyRow(src);
    if (!row) return null;
    return { rowId: row.id, next: siblingRow(row, "nextElementSibling") || siblingRow(row, "previousElementSibling") };
  }
  function keepFocus(plan) {
    if (!plan) return;
    var a = document.activeElement;
    if (a && a !== document.body && a.isConnected) return;
    var target = firstControl(document.getElementById(plan.rowId)) ||
      (plan.next && plan.next.isConnected && firstControl(plan.next)) ||
      document.getElementById("key-label");
    if (target) target.focus();
  }

  // An expiration's custom date shows only when "Custom date…" is chosen
  // (without JavaScript it always shows); picking a date chooses it.
  function syncExpiry(root) {
    (root || document).querySelectorAll('select[name="expires"]').forEach(function (sel) {
      var date = sel.form && sel.form.querySelector('input[name="expires_date"]');
      if (date) date.classList.toggle("is-hidden", sel.value !== "date");
    });
  }
  document.addEventListener("change", function (evt) {
    var el = evt.target;
    if (el.matches && el.matches('select[name="expires"]')) {
      syncExpiry(el.form);
      var date = el.form && el.form.querySelector('input[name="expires_date"]');
      if (el.value === "date" && date) date.focus();
    } else if (el.matches && el.matches('input[name="expires_date"]') && el.value) {
      var sel = el.form && el.form.querySelector('select[name="expires"]');
      if (sel) sel.value = "date";
    }
  });
  document.addEventListener("DOMContentLoaded", function () { syncExpiry(); });

  function afterSwap(ctx) {
    scheduleToasts();
    closeMenus(null);
    syncExpiry();
    keepFocus(ctx && ctx.peekshotFocus);
    var reveal = document.getElementById("key-reveal");
    if (reveal && !reveal.hasAttribute("data-seen")) {
      reveal.setAttribute("data-seen", "");
      reveal.scrollIntoView({ block: "nearest" });
      var copy = reveal.querySelector('[data-action="copy"]');
      if (copy) copy.focus();
    }
  }

  // An extension sees every swap, also those whose source element the swap
  // took away (a deleted or replaced row), whose events never reach the
  // document. htmx is deferred, so it is there once the document is parsed.
  document.addEventListener("DOMContentLoaded", function () {
    if (!window.htmx) return;
    window.htmx.registerExtension("peekshot", {
      htmx_before_swap: function (elt, detail) {
        if (detail && detail.ctx) detail.ctx.peekshotFocus = focusPlan(detail.ctx.sourceElement);
      },
      htmx_after_swap: function (elt, detail) { afterSwap(detail && detail.ctx); }
    });
  });

  // The key list refreshes when the tab comes back into view, so Last used
  // and Requests move after the key was used elsewhere (a terminal, an
  // app), without a reload. A key still shown on the page stays.
  var lastRefresh = 0;
  function refreshKeys() {
    var list = document.getElementById("api-keys-list");
    if (!list || !window.htmx || document.visibilityState !== "visible") return;
    if (Date.now() - lastRefresh < 2000) return;
    // Not under someone's hands: an open menu or dialog, a request on its way.
    if (document.querySelector("details[data-menu][open], dialog[open], .htmx-request")) return;
    lastRefresh = Date.now();
    var url = list.getAttribute("data-refresh-url");
    var reveal = list.querySelector("tr.reveal-row[id]");
    if (reveal) url += "&keep=" + encodeURIComponent(reveal.id.replace(/^key-|-reveal$/g, ""));
    window.htmx.ajax("GET", url, { source: list, target: list, swap: "innerHTML" });
  }
  document.addEventListener("visibilitychange", refreshKeys);
  window.addEventListener("focus", refreshKeys);

  // A request that got no answer at all (network down, timeout) still says so.
  document.addEventListener("htmx:error", function (evt) {
    if (evt.detail && evt.detail.ctx && evt.detail.ctx.response) return;
    var region = document.getElementById("toasts");
    if (!region) return;
    var t = document.createElement("div");
    t.className = "toast toast-error";
    t.setAttribute("role", "alert");
    t.textContent = "Couldn't reach PeekShot. Check your connection and try again.";
    region.appendChild(t);
  });

  // A page that showed a new key forgets it when left, so the back button
  // and the back-forward cache never show it again.
  window.addEventListener("pagehide", function () {
    var reveal = document.getElementById("key-reveal");
    if (reveal) reveal.remove();
  });
})();
