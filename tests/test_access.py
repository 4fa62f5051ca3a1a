"""Private repositories: hidden (404, not 403) from everyone without access, on every page,
log, stream and API read; their badge says "unknown" to all. Public ones are open."""

import pytest

from ci import store
from tests.conftest import add_user, csrf_of, post_hook, push_payload, sign_in, token_headers

SHA = "d" * 40
HIDDEN = "/octo/hidden"
READS = [HIDDEN, f"{HIDDEN}/builds/1", f"{HIDDEN}/builds/1/jobs/1/log.txt",
         f"{HIDDEN}/builds/1/jobs/1/events", "/api/repos/octo/hidden",
         "/api/repos/octo/hidden/builds", "/api/repos/octo/hidden/builds/1",
         "/api/repos/octo/hidden/builds/1/jobs/1", "/api/repos/octo/hidden/builds/1/jobs/1/log",
         "/api/repos/octo/hidden/badge"]


@pytest.fixture
def hidden(session, registered, git_repo, client):
    """A private repository with one build, next to the public ``registered`` one."""
    repo = store.add_repo(session, "octo/hidden", "github", str(git_repo.path),
                          "It's a Secret to Everybody")
    store.update_repo(session, repo, private=True)
    assert post_hook(client, push_payload("octo/hidden", SHA)).status_code == 202
    assert post_hook(client, push_payload("octo/project", SHA)).status_code == 202
    return repo


def names_listed(client, headers=None) -> list[str]:
    return [repo["full_name"] for repo in client.get("/api/repos", headers=headers)
            .get_json()["repos"]]


def test_anonymous_visitors_see_only_public_repositories(client, hidden):
    index = client.get("/").get_data(as_text=True)
    assert "octo/project" in index and "octo/hidden" not in index
    assert names_listed(client) == ["octo/project"]
    for path in READS:
        answer = client.get(path)
        assert answer.status_code == 404, path
    # Exactly what a repository that does not exist gets.
    assert client.get("/api/repos/octo/hidden").get_json() == {"error": {
        "code": "not_found", "message": "repository octo/hidden is not registered"}}
    for path in ("/octo/project", "/octo/project/builds/1",
                 "/octo/project/builds/1/jobs/1/log.txt", "/api/repos/octo/project/builds/1"):
        assert client.get(path).status_code == 200, path


def test_users_with_access_read_a_private_repository(client, session, hidden):
    reader = add_user(session, "rita", grants={hidden: "read"})
    add_user(session, "otto")
    add_user(session, "root", admin=True)
    headers = token_headers(session, reader)
    assert names_listed(client, headers) == ["octo/hidden", "octo/project"]
    for path in READS:
        assert client.get(path, headers=headers).status_code == 200, path
    assert client.get("/api/repos/octo/hidden", headers=headers).get_json()["permission"] == "read"

    sign_in(client, "otto")  # signed in, but not granted anything
    assert client.get(HIDDEN).status_code == 404
    assert "octo/hidden" not in client.get("/").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_of(client, "/")})
    sign_in(client, "root")
    assert "octo/hidden" in client.get("/").get_data(as_text=True)
    assert client.get(f"{HIDDEN}/builds/1").status_code == 200


def test_a_private_badge_says_unknown_to_everyone(client, session, hidden):
    headers = token_headers(session, add_user(session, "rita", grants={hidden: "read"}))
    public = client.get("/octo/project/badge.svg").get_data(as_text=True)
    assert "build: running" in public  # its queued build
    for answer in (client.get(f"{HIDDEN}/badge.svg"),
                   client.get(f"{HIDDEN}/badge.svg", headers=headers)):
        assert answer.status_code == 200
        assert "build: unknown" in answer.get_data(as_text=True)
    assert client.get("/api/repos/octo/hidden/badge", headers=headers).get_json() == {
        "state": "unknown", "url": "http://ci.test/octo/hidden/badge.svg"}


def test_changing_a_private_repository_without_read_access_is_404(client, session, hidden):
    headers = token_headers(session, add_user(session, "otto"))
    for method, path in (("post", "/api/repos/octo/hidden/builds/1/cancel"),
                         ("put", "/api/repos/octo/hidden/secrets/TOKEN"),
                         ("patch", "/api/repos/octo/hidden")):
        answer = getattr(client, method)(path, json={"value": "some value"}, headers=headers)
        assert answer.status_code == 404, path
    # A public one says why instead.
    refused = client.post("/api/repos/octo/project/builds/1/cancel", headers=headers)
    assert refused.status_code == 403
