// The build page, live. The page is complete without this script, which adds:
// - one Server-Sent Events stream (#build's data-events, ci/views/build_events.py) with
//   every job's new log lines and the build's state: pills, title, favicon, durations
//   (ticking while running), exit codes, errors, folding, new matrix jobs, and the
//   actions once the build finished (those two fetched from the page itself);
// - line links: a click on a line number selects it (#L12, or #job-2-L12 on a build of
//   several jobs), a shift-click a range (#L12-L20); they work on lines that arrive live;
// - a search across folded steps, per-line timestamps, and following the log's end.
// Lines are cut and sorted into sections as ci/logs/render.py does; its rules are here too.
(function () {
  "use strict";
  var build = document.getElementById("build");
  if (!build) return;
  var FINISHED = ["passed", "failed", "errored", "canceled", "skipped"];
  var FOLDED = ["passed", "skipped"];
  var OPEN = ["running", "failed", "errored", "canceled"];
  var LINE_HASH = /^#(?:job-(\d+)-)?L(\d+)(?:-L(\d+))?$/;
  var JOB_SECTIONS = { setup: "Set up job", complete: "Complete job" };
  // The most lines of one job the page keeps (ci/views/build_log.py MAX_SHOWN_LINES).
  var MAX_SHOWN_LINES = Number(build.dataset.maxLines) || 10000;
  var skew = 0; // the server's clock minus this one
  var state = null;
  var seen = {}; // "j1.s2" -> the step's status that its section's folding followed
  var lastTime = {}; // job number -> the time (s) of its last line that carries one
  var pending = {}; // job number -> log events of a job not on the page yet
  var fetching = false;
  var actionsFor = pill("b").textContent; // the build's status the actions were made for
  var following = false;
  var ownScroll = false;
  var hashWaits = false; // the line a link names has yet to arrive
  var anchorLine = null; // the line a shift-click extends from
  var timesShown = false;

  function finished(status) {
    return FINISHED.indexOf(status) >= 0;
  }

  function pill(path) {
    return document.querySelector('[data-field="' + path + '.status"]');
  }

  function multiJob() {
    return document.querySelectorAll(".log").length > 1;
  }

  function pad(number) {
    return (number < 10 ? "0" : "") + number;
  }

  // As ci/pipeline/durations.py's human_duration; whole seconds while it runs (ticking).
  function duration(seconds, running) {
    if (seconds < 10 && !running) return seconds.toFixed(1) + "s";
    seconds = Math.floor(seconds + (running ? 0 : 0.5));
    if (seconds < 60) return seconds + "s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + "m " + pad(seconds % 60) + "s";
    return Math.floor(minutes / 60) + "h " + pad(minutes % 60) + "m";
  }

  function clock(seconds) {
    var at = new Date(seconds * 1000);
    return pad(at.getHours()) + ":" + pad(at.getMinutes()) + ":" + pad(at.getSeconds());
  }

  function span(className, text, field) {
    var element = document.createElement("span");
    element.className = className;
    element.textContent = text;
    if (field) element.dataset.field = field;
    return element;
  }

  // Logs -------------------------------------------------------------------------------

  function logOf(job) {
    return document.getElementById("job-" + job + "-log");
  }

  function linesOf(log) {
    return log.querySelectorAll("ol > li");
  }

  function rank(key) {
    if (key === "setup") return [0, 0];
    if (key === "complete") return [3, 0];
    var step = Number(key);
    return step <= -2 ? [2, -step] : [1, step];
  }

  function comesBefore(a, b) {
    return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
  }

  function section(log, key, name) {
    var found = log.querySelector('details[data-step="' + key + '"]');
    if (found) {
      var label = found.querySelector(".step-name");
      if (name && !label.textContent) label.textContent = name;
      return found;
    }
    var job = log.dataset.job;
    var details = document.createElement("details");
    details.id = "job-" + job + "-step-" + key;
    details.dataset.step = key;
    var summary = document.createElement("summary");
    if (Number(key) >= 0) {
      var field = "j" + job + ".s" + (Number(key) + 1);
      summary.appendChild(span("status status-queued", "queued", field + ".status"));
      summary.appendChild(span("step-name", name));
      summary.appendChild(span("exit mono", "", field + ".exit"));
      summary.appendChild(span("muted step-time", "", field + ".duration"));
    } else {
      summary.appendChild(span("step-name", name || JOB_SECTIONS[key]));
    }
    details.appendChild(summary);
    details.appendChild(document.createElement("ol"));
    var mine = rank(key);
    var next = Array.prototype.find.call(log.children, function (other) {
      return comesBefore(mine, rank(other.dataset.step));
    });
    log.insertBefore(details, next || null);
    return details;
  }

  function addEntry(log, entry) {
    if (entry.kind === "step") {
      log.dataset.begun = "";
      var named = section(log, String(entry.step), entry.name);
      named.querySelector(".step-name").textContent = entry.name;
      return;
    }
    if (!entry.html) return;
    var key = String(entry.step);
    if (entry.step === -1) key = log.hasAttribute("data-begun") ? "complete" : "setup";
    if (entry.step !== -1) log.dataset.begun = "";
    var lines = section(log, key, "").querySelector("ol");
    var info = entry.kind === "info";
    var pieces = entry.html.split("\n");
    var ended = pieces[pieces.length - 1] === "";
    if (ended) pieces.pop();
    if (lines.hasAttribute("data-partial") && !info && pieces.length) {
      lines.lastElementChild.insertAdjacentHTML("beforeend", pieces.shift());
    }
    var time = Math.floor(Number(entry.id.split("-")[0]) / 1000);
    var markup = pieces.map(function (piece, index) {
      var attributes = info ? ' class="info"' : "";
      if (index === 0 && time !== lastTime[log.dataset.job]) attributes += ' data-t="' + time + '"';
      if (timesShown) attributes += ' data-ts="' + clock(time) + '"';
      return "<li" + attributes + ">" + piece;
    });
    if (markup.length) lastTime[log.dataset.job] = time;
    lines.insertAdjacentHTML("beforeend", markup.join(""));
    lines.toggleAttribute("data-partial", !ended);
  }

  // Each section's numbers start where the previous one's end (folded ones count too, and
  // so do the lines left out of the page).
  function renumber(log) {
    var count = 0;
    log.querySelectorAll("ol").forEach(function (lines) {
      count += Number(lines.dataset.hidden || 0);
      lines.start = count + 1;
      count += lines.childElementCount;
    });
  }

  // A job keeps its last MAX_SHOWN_LINES lines on the page, as the server's page does: a
  // runaway log must not make the page too big to scroll.
  function trim(log) {
    var lists = Array.prototype.slice.call(log.querySelectorAll("ol"));
    var extra = lists.reduce(function (sum, lines) {
      return sum + lines.childElementCount;
    }, 0) - MAX_SHOWN_LINES;
    lists.forEach(function (lines) {
      var dropped = 0;
      while (extra > 0 && lines.childElementCount > 1) {
        lines.removeChild(lines.firstElementChild);
        extra -= 1;
        dropped += 1;
      }
      if (dropped) noteHidden(lines, Number(lines.dataset.hidden || 0) + dropped);
    });
  }

  function noteHidden(lines, count) {
    lines.dataset.hidden = count;
    var note = lines.previousElementSibling;
    if (!note || !note.classList.contains("log-hidden")) {
      note = document.createElement("p");
      note.className = "muted log-hidden";
      lines.parentNode.insertBefore(note, lines);
    }
    var raw = lines.closest("section.job").querySelector("a.raw-log");
    note.textContent = count.toLocaleString("en") + " earlier line" + (count === 1 ? "" : "s") +
      " of this section are not shown here: the ";
    if (raw) note.appendChild(raw.cloneNode(true));
    note.appendChild(document.createTextNode(" has them all."));
  }

  function resetLog(log) {
    log.textContent = "";
    log.removeAttribute("data-begun");
    delete lastTime[log.dataset.job];
  }

  function onLog(data) {
    var log = logOf(data.job);
    if (!log) {
      (pending[data.job] = pending[data.job] || []).push(data);
      addJobs();
      return;
    }
    if (data.reset) {
      resetLog(log);
      if (state) showJobs();
    }
    data.entries.forEach(function (entry) { addEntry(log, entry); });
    trim(log);
    renumber(log);
    if (hashWaits) applyHash(true);
    if (searchInput.value) searchSoon();
    if (following) toEnd();
  }

  // State ------------------------------------------------------------------------------

  // "b" is the build, "j2" its job 2, "j2", "s3" that job's step 3.
  function lookup(path) {
    var found = state;
    path.forEach(function (part) {
      var number = Number(part.slice(1));
      var matches = function (item) { return item.number === number; };
      if (found && part[0] === "j") found = found.jobs.find(matches);
      else if (found && part[0] === "s") found = found.steps.find(matches);
    });
    return found;
  }

  function show(element) {
    var path = element.dataset.field.split(".");
    var field = path.pop();
    var item = lookup(path);
    if (!item) return;
    if (field === "status") {
      element.className = "status status-" + item.status;
      element.textContent = item.status;
    } else if (field === "border") {
      element.className = element.className.replace(/\bstatus-border-\w+/,
                                                    "status-border-" + item.status);
    } else if (field === "duration") {
      var end = item.finished_at ? Date.parse(item.finished_at) : Date.now() + skew;
      var seconds = Math.max(0, (end - Date.parse(item.started_at)) / 1000);
      element.textContent = item.started_at ? duration(seconds, !item.finished_at) : "–";
    } else if (field === "exit") {
      var code = item.exit_code;
      element.textContent = code === null || code === undefined ? "" : "exit " + code;
    } else if (field === "error") {
      element.textContent = item.error || "";
      element.hidden = !item.error;
    } else if (field === "where") {
      element.textContent = [item.image, item.runner && "on " + item.runner].filter(Boolean)
        .map(function (part) { return part + " · "; }).join("");
    } else if (field === "name") {
      element.textContent = item.name === "default" ? "" : " · " + item.name;
    } else if (field === "cancel") {
      element.hidden = finished(item.status);
    }
  }

  function setOpen(details, open) {
    if (!details || details.hasAttribute("data-touched")) return; // the reader chose
    if (details.open !== open) details.open = open;
  }

  // Passed steps fold once finished, the running one opens, a failing one stays open.
  function fold(log, job) {
    job.steps.forEach(function (step) {
      var key = "j" + job.number + ".s" + step.number;
      var details = section(log, String(step.number - 1), step.name);
      var was = seen[key];
      seen[key] = step.status;
      if (was === undefined || was === step.status) return;
      var setup = log.querySelector('details[data-step="setup"]');
      if (step.status === "running") setOpen(setup, false);
      if (FOLDED.indexOf(step.status) >= 0) setOpen(details, false);
      if (OPEN.indexOf(step.status) >= 0) setOpen(details, true);
    });
  }

  function showJobs() {
    state.jobs.forEach(function (job) {
      var log = logOf(job.number);
      if (log) fold(log, job);
    });
    document.querySelectorAll("[data-field]").forEach(show);
  }

  function applyState(next) {
    skew = Date.parse(next.now) - Date.now();
    state = next;
    if (next.jobs.some(function (job) { return !logOf(job.number); })) addJobs();
    showJobs();
    document.title = document.title.replace(/^(#\d+ )\S+/, "$1" + next.status);
    var icon = document.getElementById("favicon");
    var icons = JSON.parse(icon.dataset.icons);
    if (icons[next.status]) icon.href = icons[next.status];
    if (finished(next.status) && !finished(actionsFor)) {
      actionsFor = next.status;
      refreshActions();
    }
    if (following) toEnd();
  }

  function tick() {
    if (!state || finished(state.status)) return;
    document.querySelectorAll('[data-field$=".duration"]').forEach(show);
  }

  function fetchPage(then) {
    fetch(location.pathname, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        return response.ok ? response.text() : Promise.reject(response.status);
      })
      .then(function (text) { then(new DOMParser().parseFromString(text, "text/html")); })
      .catch(function () { fetching = false; });
  }

  // A finished build's page offers Restart and Rerun where it offered Cancel, and lists
  // the files its jobs kept.
  function refreshActions() {
    var parts = document.querySelectorAll("#build-actions, .artifacts[id]");
    if (!parts.length) return;
    fetchPage(function (page) {
      parts.forEach(function (mine) {
        var fresh = page.getElementById(mine.id);
        if (fresh) mine.replaceWith(document.adoptNode(fresh));
      });
    });
  }

  // A matrix planned its jobs: show them, their logs coming from the stream.
  function addJobs() {
    if (fetching) return;
    fetching = true;
    fetchPage(function (page) {
      fetching = false;
      var matrix = page.getElementById("matrix");
      var mine = document.getElementById("matrix");
      if (matrix && mine) mine.replaceWith(document.adoptNode(matrix));
      else if (matrix) build.after(document.adoptNode(matrix));
      var last = document.querySelectorAll("section.job");
      last = last[last.length - 1];
      page.querySelectorAll("section.job").forEach(function (job) {
        if (document.getElementById(job.id)) return;
        var added = document.adoptNode(job);
        resetLog(added.querySelector(".log"));
        last.after(added);
        last = added;
      });
      Object.keys(pending).forEach(function (job) {
        var events = pending[job];
        delete pending[job];
        if (logOf(job)) events.forEach(onLog);
      });
      if (state) showJobs();
    });
  }

  // Line links -------------------------------------------------------------------------

  function onNumber(line, event) {
    var gutter = parseFloat(getComputedStyle(line).paddingLeft);
    return event.clientX - line.getBoundingClientRect().left < gutter;
  }

  function lineAt(event) {
    var line = event.target.closest && event.target.closest(".log ol > li");
    return line && onNumber(line, event) ? line : null;
  }

  function unmark(className) {
    document.querySelectorAll(".log ." + className).forEach(function (line) {
      line.classList.remove(className);
    });
  }

  function openAround(line) {
    var details = line.closest("details");
    if (details && !details.open) details.open = true;
  }

  // Highlight lines from..to of a job's log; false while some have yet to arrive.
  function mark(log, from, to, scroll) {
    unmark("marked");
    var lines = linesOf(log);
    for (var i = from - 1; i < Math.min(to, lines.length); i++) {
      lines[i].classList.add("marked");
      openAround(lines[i]);
    }
    if (scroll && lines[from - 1]) lines[from - 1].scrollIntoView({ block: "center" });
    return to <= lines.length;
  }

  function applyHash(scroll) {
    var match = LINE_HASH.exec(location.hash);
    if (!match) {
      var target = location.hash.length > 1 && document.getElementById(location.hash.slice(1));
      if (target && target.tagName === "DETAILS") target.open = true;
      return Boolean(target);
    }
    var log = match[1] ? logOf(match[1]) : document.querySelector(".log");
    if (!log) return false;
    var from = Number(match[2]);
    var to = Math.max(from, Number(match[3] || from));
    anchorLine = { job: log.dataset.job, number: from };
    hashWaits = !mark(log, from, to, scroll);
    following = false;
    return true;
  }

  document.addEventListener("mousedown", function (event) {
    if (event.shiftKey && lineAt(event)) event.preventDefault(); // no text selection
  });

  document.addEventListener("click", function (event) {
    var summary = event.target.closest && event.target.closest(".log summary");
    if (summary) summary.parentNode.dataset.touched = "";
    var line = lineAt(event);
    if (!line) return;
    var log = line.closest(".log");
    var job = log.dataset.job;
    var number = Array.prototype.indexOf.call(linesOf(log), line) + 1;
    var from = number;
    var to = number;
    if (event.shiftKey && anchorLine && anchorLine.job === job) {
      from = Math.min(anchorLine.number, number);
      to = Math.max(anchorLine.number, number);
    } else {
      anchorLine = { job: job, number: number };
    }
    var prefix = multiJob() ? "job-" + job + "-" : "";
    history.replaceState(null, "", "#" + prefix + "L" + from + (to > from ? "-L" + to : ""));
    mark(log, from, to, false);
    following = false;
  });

  window.addEventListener("hashchange", function () { applyHash(true); });

  // Following the end ------------------------------------------------------------------

  function atEnd() {
    return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 40;
  }

  function toEnd() {
    var end = document.documentElement.scrollHeight - window.innerHeight;
    if (Math.abs(window.scrollY - end) > 1) {
      ownScroll = true;
      window.scrollTo(0, end);
    }
  }

  window.addEventListener("scroll", function () {
    if (ownScroll) {
      ownScroll = false;
      return;
    }
    if (build.dataset.events) following = atEnd();
  }, { passive: true });

  // Search -----------------------------------------------------------------------------

  var tools = document.getElementById("log-tools");
  var searchInput = document.getElementById("log-search");
  var count = document.getElementById("log-search-count");
  var highlights = window.CSS && CSS.highlights && window.Highlight ? CSS.highlights : null;
  var MAX_HIGHLIGHTS = 5000; // all are counted; past these, only the current one is shown
  var matches = [];
  var current = -1;
  var searchTimer = null;

  function rangeOf(line, start, length) {
    var range = document.createRange();
    var walker = document.createTreeWalker(line, NodeFilter.SHOW_TEXT);
    var offset = 0;
    var end = start + length;
    for (var node = walker.nextNode(); node; node = walker.nextNode()) {
      var size = node.data.length;
      if (start >= offset && start <= offset + size) range.setStart(node, start - offset);
      if (end >= offset && end <= offset + size) {
        range.setEnd(node, end - offset);
        break;
      }
      offset += size;
    }
    return range;
  }

  function showCurrent() {
    unmark("current");
    var match = matches[current];
    count.textContent = matches.length ? current + 1 + " of " + matches.length
      : searchInput.value ? "no match" : "";
    if (!match) return;
    match.line.classList.add("current");
    if (highlights) {
      highlights.set("log-current", new Highlight(rangeOf(match.line, match.at, match.size)));
    }
  }

  function search(keepPlace) {
    var term = searchInput.value.toLowerCase();
    matches = [];
    unmark("match");
    if (term) {
      document.querySelectorAll(".log ol > li").forEach(function (line) {
        var text = line.textContent.toLowerCase();
        for (var at = text.indexOf(term); at >= 0; at = text.indexOf(term, at + term.length)) {
          matches.push({ line: line, at: at, size: term.length });
        }
      });
    }
    if (highlights) {
      highlights.delete("log-current");
      var shown = new Highlight();
      matches.slice(0, MAX_HIGHLIGHTS).forEach(function (match) {
        shown.add(rangeOf(match.line, match.at, match.size));
      });
      highlights.set("log-match", shown);
    } else {
      matches.forEach(function (match) { match.line.classList.add("match"); });
    }
    if (keepPlace) {
      current = Math.min(current, matches.length - 1);
      showCurrent();
    } else {
      go(0);
    }
  }

  function searchSoon() {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () { search(true); }, 300);
  }

  function go(index) {
    current = matches.length ? (index + matches.length) % matches.length : -1;
    showCurrent();
    var match = matches[current];
    if (!match) return;
    openAround(match.line);
    match.line.scrollIntoView({ block: "center" });
    following = false;
  }

  searchInput.addEventListener("input", function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () { search(false); }, 150);
  });
  searchInput.addEventListener("keydown", function (event) {
    if (event.key !== "Enter") return;
    event.preventDefault();
    clearTimeout(searchTimer);
    if (!matches.length) search(false);
    else go(current + (event.shiftKey ? -1 : 1));
  });
  document.getElementById("log-search-previous").addEventListener("click", function () {
    go(current - 1);
  });
  document.getElementById("log-search-next").addEventListener("click", function () {
    go(current + 1);
  });

  // Timestamps -------------------------------------------------------------------------

  var timesBox = document.getElementById("log-times");

  function showTimes(on) {
    timesShown = on;
    document.body.classList.toggle("log-times", on);
    if (!on) return;
    document.querySelectorAll(".log").forEach(function (log) {
      var carried = null;
      linesOf(log).forEach(function (line) {
        if (line.dataset.t) carried = Number(line.dataset.t);
        if (carried !== null) line.dataset.ts = clock(carried);
      });
    });
  }

  timesBox.addEventListener("change", function () {
    showTimes(timesBox.checked);
    try {
      localStorage.setItem("slipway-log-times", timesBox.checked ? "1" : "0");
    } catch (ignored) { /* storage off: the choice lasts for this page */ }
  });

  // Start ------------------------------------------------------------------------------

  document.querySelectorAll('[data-field$=".status"]').forEach(function (element) {
    var step = /^(j\d+\.s\d+)\.status$/.exec(element.dataset.field);
    if (step) seen[step[1]] = element.textContent;
  });
  // Nothing to search when retention removed every job's log.
  var removed = document.querySelectorAll(".log-removed").length;
  tools.hidden = removed > 0 && removed === document.querySelectorAll("section.job").length;
  try {
    timesBox.checked = localStorage.getItem("slipway-log-times") === "1";
  } catch (ignored) { /* storage off */ }
  showTimes(timesBox.checked);
  if (!applyHash(true)) {
    var failure = build.dataset.focus && document.getElementById(build.dataset.focus);
    if (failure) {
      // Its end when it is taller than the window: a failure shows in a step's last lines.
      var taller = failure.offsetHeight > window.innerHeight;
      failure.scrollIntoView({ block: taller ? "end" : "start" });
    } else if (build.dataset.events) {
      following = true;
      toEnd();
    }
  }
  if (build.dataset.events) {
    var source = new EventSource(build.dataset.events);
    source.addEventListener("state", function (event) { applyState(JSON.parse(event.data)); });
    source.addEventListener("log", function (event) { onLog(JSON.parse(event.data)); });
    source.addEventListener("end", function () { source.close(); });
    setInterval(tick, 1000);
  }
})();
