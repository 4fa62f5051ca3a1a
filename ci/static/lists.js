// Keeps a list of builds current without reloads. The page works without this script:
// it only listens to the page's change stream (data-events) and, on a notice, fetches
// the same URL (its filters and page included) at most once a second and swaps in the
// parts marked data-live (the rows, the pager, the chart). Between notices it counts
// the "x ago" times and the running builds' durations on, by the server's clock.
(function () {
  "use strict";
  var root = document.querySelector("[data-events]");
  if (!root) return;
  var MIN_GAP_MS = 1000;
  var skew = 0;

  function syncClock(element) {
    var server = Date.parse(element.dataset.now);
    if (!isNaN(server)) skew = server - Date.now();
  }

  // As ci/views/present.py's time_ago and ci/pipeline/durations.py's human_duration say it.
  function ago(seconds) {
    var units = [["d", 86400], ["h", 3600], ["m", 60]];
    for (var i = 0; i < units.length; i++) {
      if (seconds >= units[i][1]) return Math.floor(seconds / units[i][1]) + units[i][0] + " ago";
    }
    return "just now";
  }

  function pad(number) {
    return (number < 10 ? "0" : "") + number;
  }

  function duration(seconds) {
    if (seconds < 10) return seconds.toFixed(1) + "s";
    seconds = Math.round(seconds);
    if (seconds < 60) return seconds + "s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + "m " + pad(seconds % 60) + "s";
    return Math.floor(minutes / 60) + "h " + pad(minutes % 60) + "m";
  }

  function tick() {
    var now = Date.now() + skew;
    document.querySelectorAll("time.ago[datetime]").forEach(function (element) {
      var since = Date.parse(element.getAttribute("datetime"));
      if (!isNaN(since)) element.textContent = ago(Math.max(0, (now - since) / 1000));
    });
    document.querySelectorAll("[data-started]").forEach(function (element) {
      var since = Date.parse(element.dataset.started);
      if (!isNaN(since)) element.textContent = duration(Math.max(0, (now - since) / 1000));
    });
  }

  function part(within, name) {
    return within.querySelector('[data-live="' + name + '"]');
  }

  // Replace each live part by its fresh copy; a part whose own live parts all still
  // exist keeps its frame and has only those replaced (the rows, not the whole table).
  function swap(fresh) {
    document.querySelectorAll("[data-live]").forEach(function (old) {
      if (!document.contains(old)) return;
      var next = part(fresh, old.dataset.live);
      if (!next) return;
      var inner = old.querySelectorAll("[data-live]");
      var keepFrame = inner.length > 0 && Array.prototype.every.call(inner, function (child) {
        return part(next, child.dataset.live);
      });
      if (!keepFrame) old.replaceWith(document.adoptNode(next));
    });
  }

  var lastFetch = 0;
  var timer = null;
  var fetching = false;
  var again = false;

  function refresh() {
    timer = null;
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    lastFetch = Date.now();
    fetch(window.location.href, {credentials: "same-origin", headers: {Accept: "text/html"}})
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var freshRoot = fresh.querySelector("[data-events]");
        if (freshRoot) syncClock(freshRoot);
        swap(fresh);
        tick();
      })
      .catch(function () { /* the next notice tries again */ })
      .then(function () {
        fetching = false;
        if (again) {
          again = false;
          schedule();
        }
      });
  }

  function schedule() {
    if (timer !== null) return;
    timer = window.setTimeout(refresh, Math.max(0, lastFetch + MIN_GAP_MS - Date.now()));
  }

  syncClock(root);
  window.setInterval(tick, 1000);
  var url = root.dataset.events;
  if (root.dataset.after) url += "?after=" + encodeURIComponent(root.dataset.after);
  new EventSource(url).addEventListener("change", schedule);
})();
