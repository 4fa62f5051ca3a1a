"""What the buttons say: a refusal is an alert in the error style, a success a status line;
and no message, API error, CLI error or server log line shows a URL's credentials."""

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ci import store
from ci.builds import service
from ci.pipeline.redact import without_credentials
from tests.conftest import add_user, csrf_of, sign_in

URL_WITH_TOKEN = "https://bot:hunter22@git.example/octo/project.git"
SHOWN = "https://***@git.example/octo/project.git"


@pytest.fixture
def signed_in(client, session, registered, git_repo) -> str:
    """The CSRF token of a browser signed in as ``dev``, who may build octo/project."""
    git_repo.commit({"a.txt": "1"})
    add_user(session, "dev", grants={registered: "write"})
    sign_in(client, "dev")
    return csrf_of(client, "/octo/project")


def press(client, path: str, csrf: str, **form: str) -> str:
    """Post a button's form and return the page it leads back to."""
    answer = client.post(path, data={"csrf_token": csrf, **form})
    assert answer.status_code == 302
    return client.get(answer.headers["Location"]).get_data(as_text=True)


def test_a_success_is_a_status_line_and_a_refusal_an_alert(client, signed_in):
    built = press(client, "/octo/project/builds", signed_in, branch="main")
    assert '<p class="flash" role="status">Build #1 of main queued.</p>' in built
    assert "flash-error" not in built
    nothing = press(client, "/octo/project/builds", signed_in, branch="nope")
    assert ('<p class="flash flash-error" role="alert">Nothing was built: branch &#39;nope&#39; '
            "does not exist in the repository.</p>") in nothing
    canceled = press(client, "/octo/project/builds/1/cancel", signed_in)
    assert '<p class="flash" role="status">Asked 1 job(s) to stop.</p>' in canceled
    again = press(client, "/octo/project/builds/1/cancel", signed_in)
    assert ('<p class="flash flash-error" role="alert">Nothing was canceled: build #1 has '
            "finished.</p>") in again


def test_a_message_quoting_a_url_shows_no_credentials(client, signed_in):
    page = press(client, "/octo/project/builds", signed_in, branch=URL_WITH_TOKEN)
    assert f"Nothing was built: &#39;{SHOWN}&#39; is not a branch name" in page
    assert "hunter22" not in page


def test_an_api_error_quoting_a_url_shows_no_credentials(client, api_token):
    refused = client.post("/api/repos/octo/project/builds", json={"sha": URL_WITH_TOKEN},
                          headers=api_token)
    assert refused.status_code == 400
    assert refused.get_json()["error"]["message"] == (
        f"'{SHOWN}' is not a full commit sha (40 hex digits)")


def test_a_cli_error_quoting_a_url_shows_no_credentials(cli, registered):
    refused = cli("trigger", "octo/project", "--branch", URL_WITH_TOKEN)
    assert refused.exit_code == 1
    assert f"'{SHOWN}' is not a branch name git accepts" in refused.output
    assert "hunter22" not in refused.output


class TalkativeRemote:
    """A git remote over HTTP that refuses, quoting a URL with credentials of its own."""

    SAYS = b"see https://admin:s3cret@internal.example/help"

    def __init__(self) -> None:
        says = self.SAYS

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(403)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(says)))
                self.end_headers()
                self.wfile.write(says)

            def log_message(self, *args) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://bot:hunter22@127.0.0.1:{self.server.server_address[1]}/o/r.git"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def test_what_git_said_is_logged_without_credentials(session, registered, caplog):
    remote = TalkativeRemote()
    try:
        store.update_repo(session, registered, clone_url=remote.url)
        with caplog.at_level(logging.WARNING, logger="ci.builds.service"):
            with pytest.raises(store.StoreError) as refused:
                service.manual_trigger(session, registered, who="dev")
    finally:
        remote.close()
    assert str(refused.value) == service.LS_REMOTE_FAILED
    [record] = caplog.records
    assert "remote: see https://***@internal.example/help" in record.getMessage()
    assert "s3cret" not in record.getMessage() and "hunter22" not in record.getMessage()


@pytest.mark.parametrize("text, shown", [
    (URL_WITH_TOKEN, SHOWN),
    ("https://ghp_t0ken@github.com/o/r.git", "https://***@github.com/o/r.git"),
    ("fatal: 'ssh://deploy:pa55@host/r.git' and http://u:p@other/x failed",
     "fatal: 'ssh://***@host/r.git' and http://***@other/x failed"),
    ("https://github.com/o/r.git and git@github.com:o/r.git", None),
    ("no URL here: mail dev@example.com", None),
])
def test_without_credentials_hides_the_user_information_of_every_url(text, shown):
    assert without_credentials(text) == (shown or text)
