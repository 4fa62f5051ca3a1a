"""The REST API: repositories, builds with filters, triggers, jobs, tailing logs, badges
and errors, as a client with an API token uses it."""

import json

import pytest

from ci import store
from ci.pipeline import keys
from ci.pipeline.logformat import LogEntry
from tests.conftest import GITHUB, SECRET, add_user, post_hook, push_payload, token_headers

API = "/api/repos/octo/project"


@pytest.fixture
def admin(session) -> dict[str, str]:
    return token_headers(session, add_user(session, "root", admin=True))


def test_who_am_i(client, api_token):
    assert client.get("/api/user", headers=api_token).get_json() == {"name": "dev",
                                                                     "admin": False}
    anonymous = client.get("/api/user")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert anonymous.get_json()["error"]["code"] == "unauthorized"
    # Another scheme is a proxy's business, not a failed sign-in.
    assert client.get("/api/user", headers={"Authorization": "Basic YTpi"}).get_json()[
        "error"]["message"] == "nobody is signed in; send `Authorization: Bearer <token>`"
    assert client.get("/api/repos", headers={"Authorization": "Basic YTpi"}).status_code == 200
    empty = client.get("/api/repos", headers={"Authorization": "Bearer "})
    assert empty.status_code == 401


def test_admins_add_and_remove_repositories(client, admin, api_token, git_repo):
    body = {"full_name": "octo/new", "clone_url": str(git_repo.path), "secret": "s3cret",
            "private": True, "default_branch": "trunk"}
    assert client.post("/api/repos", json=body).status_code == 401
    refused = client.post("/api/repos", json=body, headers=api_token)
    assert refused.status_code == 403
    assert refused.get_json()["error"]["message"] == ("only admins may register repositories, "
                                                      "and dev is not one")
    added = client.post("/api/repos", json=body, headers=admin)
    assert added.status_code == 201
    assert added.headers["Location"] == "/api/repos/octo/new"
    data = added.get_json()
    assert (data["private"], data["default_branch"], data["permission"]) == (True, "trunk",
                                                                              "write")
    assert data["webhook_url"] == "http://ci.test/hooks/github"
    assert client.post("/api/repos", json=body, headers=admin).status_code == 409
    other = {**body, "full_name": "octo/other"}
    for bad, message in (({**body, "full_name": "x"}, "'x' is not a repository name"),
                         ({**other, "colour": "red"}, "unknown field(s) colour"),
                         ({**other, "private": "yes"}, "private must be a boolean"),
                         ({"full_name": "a/b"}, "clone_url is missing"),
                         ({**other, "forge": "svn"}, "forge 'svn' is not supported")):
        refused = client.post("/api/repos", json=bad, headers=admin)
        assert refused.status_code == 400, bad
        assert message in refused.get_json()["error"]["message"]
    assert client.get("/api/repos/octo/new").status_code == 404  # private
    assert client.delete("/api/repos/octo/new", headers=api_token).status_code == 404
    assert client.delete("/api/repos/octo/new", headers=admin).status_code == 204
    assert client.get("/api/repos/octo/new", headers=admin).status_code == 404


def test_writers_change_settings_readers_may_not(client, session, registered, api_token):
    reader = token_headers(session, add_user(session, "rita", grants={registered: "read"}))
    assert client.patch(API, json={"private": True}, headers=reader).status_code == 403
    changed = client.patch(API, json={"default_branch": "develop", "private": True},
                           headers=api_token)
    assert changed.status_code == 200
    assert changed.get_json()["default_branch"] == "develop"
    assert changed.get_json()["private"] is True
    assert client.get(API).status_code == 404
    bad = client.patch(API, json={"default_branch": "a..b"}, headers=api_token)
    assert bad.status_code == 400
    assert "'a..b' is not a branch name git accepts" in bad.get_json()["error"]["message"]
    assert client.patch(API, json=[], headers=api_token).status_code == 400
    assert client.delete(API, headers=api_token).status_code == 403


def test_builds_filter_and_paginate(client, registered, api_token):
    for branch in ("main", "feature", "main"):
        post_hook(client, push_payload("octo/project", "a" * 40, branch=branch))
    payload = json.loads((GITHUB / "pull_request.synchronize.json").read_bytes())
    payload["repository"]["full_name"] = "octo/project"
    post_hook(client, json.dumps(payload).encode(), event="pull_request")
    client.post(f"{API}/builds/1/cancel", headers=api_token)

    def numbers(query: str) -> list[int]:
        answer = client.get(f"{API}/builds?{query}")
        assert answer.status_code == 200, answer.get_json()
        return [build["number"] for build in answer.get_json()["builds"]]

    assert numbers("") == [4, 3, 2, 1]
    assert numbers("branch=main") == [3, 1]
    assert numbers("status=canceled") == [1]
    assert numbers("event=pull_request") == [4]
    assert numbers("branch=main&status=queued") == [3]
    page = client.get(f"{API}/builds?per_page=3&page=2").get_json()
    assert ([b["number"] for b in page["builds"]], page["total"]) == ([1], 4)
    bad = client.get(f"{API}/builds?status=green")
    assert bad.status_code == 400
    assert bad.get_json()["error"]["message"].startswith("status 'green' is not one of queued")


def test_trigger_a_branch_or_a_commit(client, git_repo, registered, api_token):
    first = git_repo.commit({"a.txt": "1"})
    second = git_repo.commit({"a.txt": "2"})
    assert client.post(f"{API}/builds", json={}).status_code == 401
    head = client.post(f"{API}/builds", json={}, headers=api_token)
    assert head.status_code == 201
    assert head.headers["Location"] == f"{API}/builds/1"
    assert (head.get_json()["sha"], head.get_json()["event"]) == (second, "manual")
    assert head.get_json()["queued"] is True
    exact = client.post(f"{API}/builds", json={"sha": first}, headers=api_token)
    assert exact.get_json()["sha"] == first
    for body, message in (({"branch": "nope"}, "branch 'nope' does not exist in"),
                          ({"branch": "-x"}, "'-x' is not a branch name git accepts"),
                          ({"sha": "abc"}, "'abc' is not a full commit sha")):
        refused = client.post(f"{API}/builds", json=body, headers=api_token)
        assert refused.status_code == 400
        assert message in refused.get_json()["error"]["message"]


def test_a_job_with_its_steps_and_its_log_from_an_offset(
        client, registered, session, redis_client, api_token):
    post_hook(client, push_payload("octo/project", "a" * 40))
    job = store.get_build(session, registered, 1).jobs[0]
    store.plan_steps(session, job, ["test", "lint"], "slipway/python:3.11")
    session.commit()
    stream = keys.log_stream(job.id)
    for entry in (LogEntry("1-0", "step", 0, "test"), LogEntry("2-0", "out", 0, "héllo\n")):
        redis_client.xadd(stream, entry.to_fields(), id=entry.id)

    got = client.get(f"{API}/builds/1/jobs/1").get_json()
    assert [(s["number"], s["name"], s["status"]) for s in got["steps"]] == [
        (1, "test", "queued"), (2, "lint", "queued")]
    assert client.get(f"{API}/builds/1/jobs/2").status_code == 404

    whole = client.get(f"{API}/builds/1/jobs/1/log")
    expected = "--- step 1: test ---\nhéllo\n".encode()
    assert whole.data == expected
    assert whole.headers["X-Next-Offset"] == str(len(expected))
    assert whole.headers["X-Log-Complete"] == "false"
    redis_client.xadd(stream, LogEntry("3-0", "out", 0, "more\n").to_fields(), id="3-0")
    tail = client.get(f"{API}/builds/1/jobs/1/log?offset={len(expected)}")
    assert tail.data == b"more\n"
    assert tail.headers["X-Next-Offset"] == str(len(expected) + 5)
    assert client.get(f"{API}/builds/1/jobs/1/log?offset=999").status_code == 416
    assert client.get(f"{API}/builds/1/jobs/1/log?offset=x").status_code == 400

    canceled = client.post(f"{API}/builds/1/jobs/1/cancel", headers=api_token)
    assert canceled.status_code == 202
    assert canceled.get_json()["build"]["status"] == "canceled"
    done = client.get(f"{API}/builds/1/jobs/1/log?offset={len(expected) + 5}")
    assert done.headers["X-Log-Complete"] == "true"


def test_badge_info(client, registered):
    assert client.get(f"{API}/badge").get_json() == {
        "state": "unknown", "url": "http://ci.test/octo/project/badge.svg"}
    post_hook(client, push_payload("octo/project", "a" * 40, branch="dev"))
    assert client.get(f"{API}/badge?branch=dev").get_json() == {
        "state": "running", "url": "http://ci.test/octo/project/badge.svg?branch=dev"}


def test_errors_are_json_with_a_stable_code(client, registered, api_token):
    assert client.put(f"{API}/builds").get_json()["error"]["code"] == "method_not_allowed"
    missing = client.get(f"{API}/builds/7", headers=api_token)
    assert missing.get_json() == {"error": {"code": "not_found",
                                            "message": "octo/project has no build #7"}}
    not_json = client.post(f"{API}/builds", data="branch=main", headers=api_token)
    assert not_json.status_code == 400
    assert not_json.get_json()["error"]["message"].startswith("send a JSON object")
    assert SECRET not in client.get(API).get_data(as_text=True)
    # Numbers larger than the database holds name nothing; they are not an error.
    assert client.get(f"{API}/builds/{10**25}").status_code == 404
    assert client.get(f"{API}/builds?page={10**25}").get_json()["builds"] == []
    assert client.get(f"/octo/project?page={10**25}").status_code == 200
