// Follows a running job's log over Server-Sent Events and appends each chunk.
// The server renders (and escapes) the HTML; this script only places it.
(function () {
  function section(log, step, name) {
    var existing = log.querySelector('.section[data-step="' + step + '"]');
    if (existing) return existing.querySelector("pre");
    var div = document.createElement("div");
    div.className = "section";
    div.dataset.step = step;
    div.id = "job-" + log.dataset.job + "-step-" + step;
    var title = document.createElement("div");
    title.className = "section-title";
    title.textContent = name || (step < 0 ? "setup" : "step " + (step + 1));
    var pre = document.createElement("pre");
    div.appendChild(title);
    div.appendChild(pre);
    log.appendChild(div);
    return pre;
  }

  function follow(log) {
    var url = log.dataset.events + "?after=" + encodeURIComponent(log.dataset.lastId || "0-0");
    var source = new EventSource(url);
    var atBottom = function () {
      return window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    };
    var append = function (event) {
      var data = JSON.parse(event.data);
      var stick = atBottom();
      var pre = section(log, data.step, data.name);
      if (data.html) pre.insertAdjacentHTML("beforeend", data.html);
      if (stick) window.scrollTo(0, document.body.scrollHeight);
    };
    ["step", "out", "info"].forEach(function (kind) {
      source.addEventListener(kind, append);
    });
    source.addEventListener("end", function (event) {
      append(event);
      source.close();
      window.setTimeout(function () { window.location.reload(); }, 800);
    });
  }

  document.querySelectorAll(".log[data-events]").forEach(follow);
})();
