// Progressive enhancement only: every page works without this file.
"use strict";
(function () {
  // Copy buttons: data-copy holds the text.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) return;
    var text = button.getAttribute("data-copy");
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1200);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {});
    } else {
      var area = document.createElement("textarea");
      area.value = text;
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      try { document.execCommand("copy"); done(); } catch (e) {}
      area.remove();
    }
  });

  // Delete links open a <dialog> whose form posts where the link's
  // confirmation page would have.
  var dialog = document.getElementById("confirm");
  if (dialog && dialog.showModal) {
    document.addEventListener("click", function (event) {
      var link = event.target.closest("a[data-confirm]");
      if (!link) return;
      event.preventDefault();
      dialog.querySelector("p").textContent = link.getAttribute("data-confirm");
      dialog.querySelector("form").setAttribute("action", link.getAttribute("href"));
      dialog.showModal();
    });
    dialog.querySelector("button[value=cancel]").addEventListener("click", function (event) {
      event.preventDefault();
      dialog.close();
    });
  }

  // Filters over a table already on the page: hide rows that do not match.
  document.querySelectorAll("input[data-filter-rows]").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-filter-rows"));
    if (!table) return;
    var form = input.form;
    if (form) form.addEventListener("submit", function (event) { event.preventDefault(); });
    input.addEventListener("input", function () {
      var needle = input.value.toLowerCase();
      table.querySelectorAll("tbody tr").forEach(function (row) {
        row.hidden = needle !== "" && row.textContent.toLowerCase().indexOf(needle) < 0;
      });
    });
  });

  // The repository filter asks the server (the list is paged), as you type.
  var search = document.querySelector("input[data-filter-remote]");
  if (search) {
    var target = document.getElementById(search.getAttribute("data-filter-remote"));
    var timer = 0, asked = 0;
    search.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var url = new URL(window.location.href);
        url.search = "";
        if (search.value) url.searchParams.set("q", search.value);
        var mine = ++asked;
        fetch(url, { headers: { Accept: "text/html" } })
          .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
          .then(function (html) {
            if (mine !== asked) return;
            var doc = new DOMParser().parseFromString(html, "text/html");
            var fresh = doc.getElementById(target.id);
            if (fresh) target.replaceWith(fresh), target = fresh;
            history.replaceState(null, "", url);
          }, function () {});
      }, 150);
    });
  }
})();
