// The board's one script, from 'self' as the Content-Security-Policy requires. The board works
// without it; it adds the auto-refresh of pages that show live state and "pick every job".
(function () {
  "use strict";
  var body = document.body;
  var every = parseInt(body.getAttribute("data-refresh") || "0", 10);
  var box = document.getElementById("autorefresh");
  if (box && every > 0) {
    box.checked = window.localStorage.getItem("jobfleet.autorefresh") === "on";
    box.addEventListener("change", function () {
      window.localStorage.setItem("jobfleet.autorefresh", box.checked ? "on" : "off");
    });
    window.setInterval(function () {
      // Never reload under an operator who is picking jobs or typing.
      var picked = document.querySelector("input[name=id]:checked");
      var typing = document.activeElement && /INPUT|SELECT|TEXTAREA/.test(document.activeElement.tagName) && document.activeElement !== box;
      if (box.checked && !picked && !typing) { window.location.reload(); }
    }, every * 1000);
  }
  var all = document.getElementById("pick-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll("input[name=id]").forEach(function (c) { c.checked = all.checked; });
    });
  }
})();
