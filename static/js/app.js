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

  document.addEventListener("click", function (evt) {
    var el = evt.target.closest("[data-action]");
    if (!el) {
      // A click outside an open menu closes it.
      document.querySelectorAll("details.menu[open]").forEach(function (d) {
        if (!d.contains(evt.target)) d.removeAttribute("open");
      });
      return;
    }
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

  document.addEventListener("htmx:after:swap", function () {
    scheduleToasts();
    document.querySelectorAll("details.menu[open]").forEach(function (d) { d.removeAttribute("open"); });
    var reveal = document.getElementById("key-reveal");
    if (reveal && !reveal.hasAttribute("data-seen")) {
      reveal.setAttribute("data-seen", "");
      reveal.scrollIntoView({ block: "nearest" });
      var copy = reveal.querySelector('[data-action="copy"]');
      if (copy) copy.focus();
    }
  });

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
