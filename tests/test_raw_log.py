"""The raw log (``…/jobs/<m>/log.txt``) is plain UTF-8 text without terminal escape
sequences, and ``?download=1`` sends it as a file named for the repository, build and job."""

import pytest

from ci import store
from ci.logs.plain import strip_ansi
from ci.pipeline.logformat import OUT, STEP, LogEntry, to_text
from tests.conftest import SECRET
from tests.reported_jobs import report_job

ESC = "\x1b"
LOG = "/octo/project/builds/1/jobs/1/log.txt"
PRINTED = (
    f"{ESC}[1m{ESC}[32mPASSED{ESC}[0m 3 tests\n"
    f"{ESC}]0;pytest: tests{ESC}\\{ESC}]8;;https://example.com/report{ESC}\\report"
    f"{ESC}]8;;{ESC}\\ written\r\n"
    f"{ESC}[?25ldownloading  10%\rdownloading 100%{ESC}[?25h\n"
    f"{ESC}[2K{ESC}[1Gstatus\t{ESC}[38;5;208mok{ESC}[38;2;1;2;3m!{ESC}[m\x07\x08\n"
)
SHOWN = ("PASSED 3 tests\nreport written\ndownloading  10%\ndownloading 100%\n"
         "status\tok!\n")


@pytest.fixture
def reported(client, session, resources, redis_client, registered):
    return report_job(client, session, resources, redis_client, {"test": PRINTED})


def test_the_raw_log_is_utf8_text_without_escape_sequences(client, reported):
    response = client.get(LOG)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    assert "Content-Disposition" not in response.headers
    text = response.get_data(as_text=True)
    assert f"--- step 1: test ---\n{SHOWN}\n--- job passed ---\n" in text
    assert not any(control in text for control in (ESC, "\r", "\x07", "\x08", "[32m", "]8;;"))


def test_download_sends_the_log_as_a_named_file(client, reported):
    download = client.get(LOG + "?download=1")
    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == \
        'attachment; filename="octo-project-1-1.log"'
    assert download.data == client.get(LOG + "?download=0").data == client.get(LOG).data


@pytest.mark.parametrize("value", ["yes", "true", "2", ""])
def test_download_other_than_0_or_1_is_a_clear_400(client, reported, value):
    response = client.get(f"{LOG}?download={value}")
    assert response.status_code == 400
    assert f"download is 1 (save the log as a file) or 0, not &#39;{value}&#39;" in \
        response.get_data(as_text=True)


def test_the_downloaded_files_name_is_safe_for_any_repository_name(
        client, session, resources, redis_client, git_repo):
    store.add_repo(session, ".hidden/project", "github", str(git_repo.path), SECRET)
    report_job(client, session, resources, redis_client, {"test": "ok\n"},
               full_name=".hidden/project")
    download = client.get("/.hidden/project/builds/1/jobs/1/log.txt?download=1")
    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == \
        'attachment; filename="hidden-project-1-1.log"'


def test_a_sequence_cut_between_two_chunks_is_still_taken_out():
    entries = [LogEntry("1-0", STEP, 0, "test"), LogEntry("1-1", OUT, 0, f"{ESC}[3"),
               LogEntry("1-2", OUT, 0, f"1mred{ESC}[0m\n")]
    assert strip_ansi(to_text(entries)) == "--- step 1: test ---\nred\n"


def test_text_without_escape_sequences_is_left_as_it_is():
    text = "naïve café: 100% ✓\n\ttabbed [not a sequence] \\e[31m\n"
    assert strip_ansi(text) == text


def test_the_api_document_describes_the_download_parameter(client):
    document = client.get("/api/openapi.json").get_json()
    operation = document["paths"]["/{owner}/{name}/builds/{number}/jobs/{job_number}/log.txt"]
    download = next(parameter for parameter in operation["get"]["parameters"]
                    if parameter.get("name") == "download")
    assert download["in"] == "query"
    assert download["schema"]["enum"] == ["0", "1"]
