"""The process-local cache of rendered archived logs: rendered once, never served stale."""

from __future__ import annotations

from ci.logs import rendered, storage
from ci.pipeline.logformat import OUT, STEP, LogEntry


def archive(log_dir, job_id: int, text: str) -> None:
    storage._write(storage.archive_path(log_dir, job_id),
                   [LogEntry("1700000000000-0", STEP, 0, "test"),
                    LogEntry("1700000000001-0", OUT, 0, text)])


def shown_text(log) -> str:
    return "".join(section.html for section in log.sections)


def test_an_archived_log_is_rendered_once_and_again_when_its_file_changes(tmp_path):
    archive(tmp_path, 7, "\x1b[32mPASSED\x1b[0m first\n")
    first, last = rendered.archived_log(tmp_path, 7, ["test"])
    assert last == "1700000000001-0"
    assert '<span class="ansi-fg-green">PASSED</span> first' in shown_text(first)
    again, _ = rendered.archived_log(tmp_path, 7, ["test"])
    assert again is first  # not rendered a second time

    archive(tmp_path, 7, "a rerun's log, longer than the first\n")  # archived anew
    replaced, _ = rendered.archived_log(tmp_path, 7, ["test"])
    assert replaced is not first and "a rerun&#x27;s log" in shown_text(replaced)
    other_steps, _ = rendered.archived_log(tmp_path, 7, ["test", "deploy"])
    assert [section.name for section in other_steps.sections] == ["test", "deploy"]

    storage.archive_path(tmp_path, 7).unlink()  # removed by retention
    assert rendered.archived_log(tmp_path, 7, ["test"]) is None


def test_the_cache_keeps_at_most_its_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(rendered, "MAX_LINES", 5)
    monkeypatch.setattr(rendered, "_cache", type(rendered._cache)())
    monkeypatch.setattr(rendered, "_lines", 0)
    for job_id in (1, 2):
        archive(tmp_path, job_id, "one\ntwo\nthree\n")
        rendered.archived_log(tmp_path, job_id, ["test"])
    assert [key[0] for key in rendered._cache] == [str(storage.archive_path(tmp_path, 2))]
    assert rendered._lines == 3
