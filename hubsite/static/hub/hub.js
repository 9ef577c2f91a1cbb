/* Adapter Hub: small enhancements only; every page works without this script. */
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = document.execCommand("copy");
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  function setUpCopyButtons() {
    document.querySelectorAll("[data-copy-target]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var target = document.getElementById(button.getAttribute("data-copy-target"));
        var label = button.textContent;
        copyText(target ? target.textContent.trim() : "").then(function () {
          button.textContent = "Copied!";
          button.setAttribute("data-copied", "true");
        }, function () {
          button.textContent = "Press Ctrl+C";
        });
        window.setTimeout(function () { button.textContent = label; }, 2000);
      });
    });
  }

  function replaceFromPage(html, ids) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    ids.forEach(function (id) {
      var fresh = doc.getElementById(id);
      var old = document.getElementById(id);
      if (fresh && old) { old.replaceWith(fresh); }
    });
  }

  function pollStatus(box) {
    var url = box.getAttribute("data-status-url");
    var delay = 1500;
    function tick() {
      fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (data && data.final) {
            return fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
              .then(function (r) { return r.text(); })
              .then(function (html) { replaceFromPage(html, ["version-status", "report", "version-facts"]); });
          }
          if (data) {
            var badge = box.querySelector(".badge");
            if (badge && badge.textContent !== data.status) {
              badge.textContent = data.status;
              badge.className = "badge badge-" + data.status;
            }
          }
          delay = Math.min(delay * 1.3, 8000);
          window.setTimeout(tick, delay);
        })
        .catch(function () { window.setTimeout(tick, 8000); });
    }
    window.setTimeout(tick, delay);
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpCopyButtons();
    var box = document.querySelector("[data-status-url][data-final='false']");
    if (box) { pollStatus(box); }
  });
})();
