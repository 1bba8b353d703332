/*
 * The colour theme: the system's (prefers-color-scheme, in base.css) unless
 * the person picked light or dark, which is kept in localStorage. A classic
 * script in every page's <head>, not a module: it runs before the first
 * paint, so a dark page never flashes white (the CSP allows no inline
 * script). It also wires every "Theme" select on the page, and follows a
 * choice made in another tab.
 */
(function () {
  "use strict";
  var KEY = "teamchat.theme";
  var root = document.documentElement;

  function stored() {
    try {
      var value = window.localStorage.getItem(KEY);
      return value === "light" || value === "dark" ? value : "system";
    } catch (err) {
      return "system";
    }
  }

  function apply(choice) {
    if (choice === "light" || choice === "dark") {
      root.setAttribute("data-theme", choice);
    } else {
      root.removeAttribute("data-theme");
    }
    document.querySelectorAll("select[data-theme-choice]").forEach(function (select) {
      select.value = choice;
    });
  }

  function choose(choice) {
    try {
      if (choice === "system") {
        window.localStorage.removeItem(KEY);
      } else {
        window.localStorage.setItem(KEY, choice);
      }
    } catch (err) {
      /* private mode: this page only */
    }
    apply(choice);
  }

  apply(stored());
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("select[data-theme-choice]").forEach(function (select) {
      select.value = stored();
      select.addEventListener("change", function () {
        choose(select.value);
      });
    });
  });
  window.addEventListener("storage", function (event) {
    if (event.key === KEY || event.key === null) {
      apply(stored());
    }
  });
})();
