"""A build started by hand names who started it — the signed-in user, the API token's user,
or the local user of the CLI — as its author and in its message, on the pages and in the
API."""

import pytest

from ci import store
from tests.conftest import add_user, csrf_of, sign_in

API_BUILD = "/api/repos/octo/project/builds/1"


@pytest.fixture
def dev(session, registered, git_repo):
    """A user who may build octo/project, whose main branch has a commit."""
    git_repo.commit({"a.txt": "1"})
    return add_user(session, "dev", grants={registered: "write"})


def test_the_build_branch_button_records_the_signed_in_user(client, dev):
    sign_in(client, "dev")
    answer = client.post("/octo/project/builds", data={
        "branch": "main", "csrf_token": csrf_of(client, "/octo/project")})
    assert answer.status_code == 302
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert '<p class="message">manual build by dev</p>' in page
    assert "<dt>Author</dt><dd>dev</dd>" in page
    assert "manual build by dev" in client.get("/octo/project").get_data(as_text=True)
    build = client.get(API_BUILD).get_json()
    assert (build["event"], build["author"], build["message"]) == (
        "manual", "dev", "manual build by dev")


def test_an_api_trigger_records_the_tokens_user(client, api_token, git_repo):
    sha = git_repo.commit({"a.txt": "1"})
    for body in ({"branch": "main"}, {"sha": sha}):
        created = client.post("/api/repos/octo/project/builds", json=body, headers=api_token)
        assert created.status_code == 201
        assert (created.get_json()["author"], created.get_json()["message"]) == (
            "dev", "manual build by dev")
        assert created.get_json()["sha"] == sha


def test_a_cli_trigger_records_the_local_user(cli, session, dev, monkeypatch):
    monkeypatch.setenv("LOGNAME", "ops")
    assert cli("trigger", "octo/project").exit_code == 0
    session.rollback()
    build = store.get_build(session, store.get_repo(session, "octo/project"), 1)
    assert (build.author, build.message) == ("ops (CLI)", "manual build by ops (CLI)")


def test_a_branch_that_is_not_utf8_is_refused_before_git_sees_it(client, api_token):
    """JSON may carry a lone surrogate, which no ref can be named; git is never asked."""
    answer = client.post("/api/repos/octo/project/builds", data='{"branch": "\\ud800"}',
                         content_type="application/json", headers=api_token)
    assert answer.status_code == 400
    assert "not valid UTF-8" in answer.get_json()["error"]["message"]
