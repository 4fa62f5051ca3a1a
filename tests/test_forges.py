"""``POST /hooks/gitlab`` and ``/hooks/gitea`` (``/forgejo``, ``/gogs``) with the forges'
recorded payloads and headers, sent byte for byte, against a real database and Redis."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

import pytest
from sqlalchemy import select

from ci import forges, store
from ci.forges import gitea
from ci.forges.types import Ignored, WebhookRejected
from ci.store.models import Build
from tests.conftest import FIXTURES, SECRET

WEBHOOKS = FIXTURES / "webhooks"
#: The header each forge names a delivery by (composed headers share one value).
DELIVERY = {"gitlab": "Idempotency-Key", "gitea": "X-Gitea-Delivery", "gogs": "X-Gogs-Delivery"}


def recorded(forge: str, name: str, headers_name: str | None = None) -> tuple[bytes, dict]:
    """A recorded payload's exact bytes and its headers (a fresh delivery id)."""
    body = (WEBHOOKS / forge / f"{name}.json").read_bytes()
    headers = json.loads((WEBHOOKS / forge / f"{headers_name or name}.headers.json").read_text())
    headers.pop("Content-Length", None)  # the test client sets it from the body
    for header in ("Idempotency-Key", "X-Gitea-Delivery", "X-Gogs-Delivery",
                   "X-Forgejo-Delivery"):
        if header in headers:
            headers[header] = str(uuid.uuid4())
    return body, headers


def register(session, git_repo, body: bytes, forge: str, secret: str = SECRET):
    """Register the repository a recorded payload is about."""
    payload = json.loads(body)
    name = (payload["project"]["path_with_namespace"] if forge == "gitlab"
            else payload["repository"]["full_name"])
    return store.add_repo(session, name, forge, str(git_repo.path), secret)


def builds(session) -> list[Build]:
    session.rollback()  # a new transaction sees what the request committed
    return list(session.scalars(select(Build).order_by(Build.id)))


def hex_signature(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# GitLab ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, event, ref, sha, branch, tag, author, message", [
    ("push.gitlab-com", "push", "refs/heads/master", "2adc9465c4edfc33834e173fe89436a7cb899a1d",
     "master", None, "sytses", "added readme\n"),
    ("push.docs", "push", "refs/heads/master", "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
     "master", None, "jsmith", "fixed readme"),
    ("tag_push.created", "tag", "refs/tags/v1.0.0", "2adc9465c4edfc33834e173fe89436a7cb899a1d",
     None, "v1.0.0", "sytses", "added readme\n"),
    ("tag_push.docs", "tag", "refs/tags/v1.0.0", "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
     None, "v1.0.0", "John Smith", ""),
])
def test_gitlab_pushes_and_tags_build_the_commit(client, session, git_repo, name, event, ref,
                                                  sha, branch, tag, author, message):
    body, headers = recorded("gitlab", name)
    register(session, git_repo, body, "gitlab")
    response = client.post("/hooks/gitlab", data=body, headers=headers)
    assert response.status_code == 202, response.get_json()
    [build] = builds(session)
    assert (build.event, build.ref, build.sha, build.branch, build.tag) == (event, ref, sha,
                                                                          branch, tag)
    assert (build.author, build.message, build.fork, build.pr_number) == (author, message,
                                                                        False, None)


def test_gitlab_push_links_the_comparison(client, session, git_repo):
    body, headers = recorded("gitlab", "push.gitlab-com")
    register(session, git_repo, body, "gitlab")
    client.post("/hooks/gitlab", data=body, headers=headers)
    [build] = builds(session)
    assert build.compare_url == ("https://gitlab.com/gitlab-org/hello-world/-/compare/"
                                 "9217710ce8c7e1eae7a5d1c45f6e43e1c769f866..."
                                 "2adc9465c4edfc33834e173fe89436a7cb899a1d")


@pytest.mark.parametrize("name", ["merge_request.open.gitlab-com", "merge_request.reopen"])
def test_gitlab_merge_request_opened_or_reopened_builds_its_head(client, session, git_repo,
                                                                 name):
    body, headers = recorded("gitlab", name)
    register(session, git_repo, body, "gitlab")
    assert client.post("/hooks/gitlab", data=body, headers=headers).status_code == 202
    [build] = builds(session)
    assert (build.event, build.pr_number, build.sha) == (
        "pull_request", 1, "c4c79227ed610f1151f05bbc5be33b4f340d39c8")
    assert (build.ref, build.branch, build.fork) == ("refs/merge-requests/1/head", "master", False)
    assert (build.author, build.message) == ("sytses", "update readme")
    assert build.compare_url == "https://gitlab.com/gitlab-org/hello-world/merge_requests/1"


def test_gitlab_documented_merge_request_example_builds(client, session, git_repo):
    body, headers = recorded("gitlab", "merge_request.open.docs")
    register(session, git_repo, body, "gitlab")
    assert client.post("/hooks/gitlab", data=body, headers=headers).status_code == 202
    [build] = builds(session)
    assert (build.sha, build.branch, build.pr_number) == (
        "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", "master", 1)


def merge_request(**changes) -> bytes:
    """The gitlab.com "open" delivery with ``object_attributes`` changed (no recorded
    payload has an update with commits or a merge request from a fork)."""
    payload = json.loads((WEBHOOKS / "gitlab" / "merge_request.open.gitlab-com.json").read_bytes())
    payload["object_attributes"].update(changes)
    return json.dumps(payload).encode()


def test_gitlab_merge_request_update_builds_only_with_new_commits(client, session, git_repo):
    _, headers = recorded("gitlab", "merge_request.open.gitlab-com")
    body = merge_request(action="update", oldrev="9217710ce8c7e1eae7a5d1c45f6e43e1c769f866")
    register(session, git_repo, body, "gitlab")
    assert client.post("/hooks/gitlab", data=body, headers=headers).status_code == 202
    edited = client.post("/hooks/gitlab", data=merge_request(action="update"),
                         headers={**headers, "Idempotency-Key": str(uuid.uuid4())})
    assert edited.status_code == 200
    assert edited.get_json() == {
        "status": "ignored",
        "reason": "merge request update without new commits does not trigger builds"}
    assert len(builds(session)) == 1


def test_gitlab_merge_request_from_another_project_is_a_fork(client, session, git_repo):
    _, headers = recorded("gitlab", "merge_request.open.gitlab-com")
    body = merge_request(source_project_id=999)
    register(session, git_repo, body, "gitlab")
    assert client.post("/hooks/gitlab", data=body, headers=headers).status_code == 202
    assert builds(session)[0].fork is True


@pytest.mark.parametrize("name, reason", [
    ("push.branch-deleted", "refs/heads/feature was deleted; nothing to build"),
    ("tag_push.deleted", "refs/tags/v1.0.0 was deleted; nothing to build"),
    ("merge_request.close", "merge request action 'close' does not trigger builds"),
    ("merge_request.merge", "merge request action 'merge' does not trigger builds"),
])
def test_gitlab_deletions_and_closed_merge_requests_are_ignored(client, session, git_repo,
                                                                name, reason):
    body, headers = recorded("gitlab", name)
    register(session, git_repo, body, "gitlab")
    response = client.post("/hooks/gitlab", data=body, headers=headers)
    assert response.status_code == 200
    assert response.get_json() == {"status": "ignored", "reason": reason}
    assert builds(session) == []


def test_gitlab_wrong_or_missing_token_is_401(client, session, git_repo):
    body, headers = recorded("gitlab", "push.gitlab-com")
    register(session, git_repo, body, "gitlab")
    wrong = client.post("/hooks/gitlab", data=body,
                        headers={**headers, "X-Gitlab-Token": "It's a secret to nobody"})
    assert wrong.status_code == 401
    assert wrong.get_json()["error"]["code"] == "token_mismatch"
    del headers["X-Gitlab-Token"]
    missing = client.post("/hooks/gitlab", data=body, headers=headers)
    assert missing.status_code == 401
    assert missing.get_json()["error"]["code"] == "token_missing"
    assert builds(session) == []


def test_gitlab_redelivery_makes_one_build(client, session, git_repo):
    body, headers = recorded("gitlab", "push.gitlab-com")
    register(session, git_repo, body, "gitlab")
    assert client.post("/hooks/gitlab", data=body, headers=headers).status_code == 202
    again = client.post("/hooks/gitlab", data=body, headers=headers)
    assert again.get_json()["status"] == "duplicate"
    assert len(builds(session)) == 1


def test_gitlab_malformed_deliveries_are_400(client, session, git_repo):
    body, headers = recorded("gitlab", "merge_request.open.gitlab-com")
    register(session, git_repo, body, "gitlab")
    assert client.post("/hooks/gitlab", data=b"{not json", headers=headers).status_code == 400
    no_event = {k: v for k, v in headers.items() if k != "X-Gitlab-Event"}
    response = client.post("/hooks/gitlab", data=body, headers=no_event)
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == "X-Gitlab-Event header is missing"
    no_commit = merge_request(last_commit=None)
    response = client.post("/hooks/gitlab", data=no_commit, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "missing_field"
    no_project = json.dumps({"object_kind": "push"}).encode()
    response = client.post("/hooks/gitlab", data=no_project, headers=headers)
    assert response.get_json()["error"]["message"] == "payload has no project.path_with_namespace"
    assert builds(session) == []


# Gitea, Forgejo, Gogs -----------------------------------------------------------------------

@pytest.mark.parametrize("path, forge, name, headers_name, sha, author", [
    ("/hooks/gitea", "gitea", "push", None, "4522cbcefc20728a5b72b3a86af35e608622c514", "unknwon"),
    ("/hooks/forgejo", "gitea", "push", "push.forgejo", "4522cbcefc20728a5b72b3a86af35e608622c514",
     "unknwon"),
    ("/hooks/gitea", "gitea", "push.branch-created", None,
     "67b56589a45103f891bdee7c0546e5d40bc02001", "example"),
    ("/hooks/gogs", "gogs", "push", None, "4522cbcefc20728a5b72b3a86af35e608622c514", "unknwon"),
])
def test_gitea_family_pushes_build_the_commit(client, session, git_repo, path, forge, name,
                                              headers_name, sha, author):
    body, headers = recorded(forge, name, headers_name)
    register(session, git_repo, body, "gitea")
    response = client.post(path, data=body, headers=headers)
    assert response.status_code == 202, response.get_json()
    [build] = builds(session)
    assert (build.event, build.branch, build.ref, build.sha) == ("push", "master",
                                                                 "refs/heads/master", sha)
    assert (build.author, build.fork, build.tag) == (author, False, None)
    assert build.compare_url == json.loads(body)["compare_url"]


def test_forgejo_signature_alone_is_enough(client, session, git_repo):
    body, headers = recorded("gitea", "push", "push.forgejo")
    only_forgejo = {k: v for k, v in headers.items()
                    if not k.startswith(("X-Gitea", "X-Gogs", "X-Hub", "X-GitHub"))}
    register(session, git_repo, body, "gitea")
    assert client.post("/hooks/forgejo", data=body, headers=only_forgejo).status_code == 202


def gitea_push(**changes) -> bytes:
    """The recorded Gitea push with fields changed (no recorded push of a tag or deletion)."""
    payload = json.loads((WEBHOOKS / "gitea" / "push.json").read_bytes())
    payload.update(changes)
    return json.dumps(payload).encode()


def post_gitea(client, body: bytes, event: str = "push", secret: str = SECRET, **extra):
    headers = {"Content-Type": "application/json", "X-Gitea-Event": event,
               "X-Gitea-Delivery": str(uuid.uuid4()),
               "X-Gitea-Signature": hex_signature(body, secret), **extra}
    return client.post("/hooks/gitea", data=body, headers=headers)


def test_gitea_tag_push_builds_the_tag_and_deletion_is_ignored(client, session, git_repo):
    tag = gitea_push(ref="refs/tags/v1.0.0")
    register(session, git_repo, tag, "gitea")
    assert post_gitea(client, tag).status_code == 202
    [build] = builds(session)
    assert (build.event, build.tag, build.branch) == ("tag", "v1.0.0", None)
    deleted = post_gitea(client, gitea_push(after="0" * 40, commits=[]))
    assert deleted.get_json() == {"status": "ignored",
                                  "reason": "refs/heads/master was deleted; nothing to build"}
    assert len(builds(session)) == 1


@pytest.mark.parametrize("name, reason", [
    ("create.tag", "create events do not trigger builds; the push of the new branch or tag does"),
    ("delete.branch", ("delete events do not trigger builds; a deleted branch or tag has "
                       "nothing to build")),
    ("pull_request.closed", "pull_request action 'closed' does not trigger builds"),
    ("pull_request.merged", "pull_request action 'closed' does not trigger builds"),
])
def test_gitea_create_delete_and_closed_pull_requests_are_ignored(client, session, git_repo,
                                                                  name, reason):
    body, headers = recorded("gitea", name)
    register(session, git_repo, body, "gitea")
    response = client.post("/hooks/gitea", data=body, headers=headers)
    assert response.status_code == 200
    assert response.get_json() == {"status": "ignored", "reason": reason}
    assert builds(session) == []


@pytest.mark.parametrize("name", ["pull_request.opened", "pull_request.synchronized",
                                  "pull_request.reopened"])
def test_gitea_pull_request_builds_its_head(client, session, git_repo, name):
    body, headers = recorded("gitea", name)
    register(session, git_repo, body, "gitea")
    assert client.post("/hooks/gitea", data=body, headers=headers).status_code == 202
    [build] = builds(session)
    assert (build.event, build.pr_number, build.ref, build.branch) == (
        "pull_request", 1, "refs/pull/1/head", "master")
    assert (build.sha, build.fork, build.author) == (
        "2eba238e33607c1fa49253182e9fff42baafa1eb", False, "jcitizen")


def test_gitea_sync_event_type_counts_as_pull_request(client, session, git_repo):
    body, headers = recorded("gitea", "pull_request.synchronized")
    assert headers["X-Gitea-Event-Type"] == "pull_request_sync"
    register(session, git_repo, body, "gitea")
    headers["X-Gitea-Event"] = "pull_request_sync"
    assert client.post("/hooks/gitea", data=body, headers=headers).status_code == 202


def test_gitea_pull_request_from_a_fork_is_marked(client, session, git_repo):
    body, headers = recorded("gitea", "pull_request.opened-from-fork")
    register(session, git_repo, body, "gitea")
    assert client.post("/hooks/gitea", data=body, headers=headers).status_code == 202
    [build] = builds(session)
    assert (build.pr_number, build.sha, build.fork) == (
        2, "48e773f892a831faa47c0a160d1b7f0cd369ae2a", True)


def test_gitea_wrong_or_missing_signature_is_401(client, session, git_repo):
    body, headers = recorded("gitea", "push")
    register(session, git_repo, body, "gitea")
    forged = {**headers, "X-Gitea-Signature": hex_signature(body, "not the secret")}
    response = client.post("/hooks/gitea", data=body, headers=forged)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "signature_mismatch"
    unsigned = {k: v for k, v in headers.items() if not k.endswith("-Signature")}
    response = client.post("/hooks/gitea", data=body, headers=unsigned)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "signature_missing"
    assert builds(session) == []


def test_gitea_malformed_deliveries_are_400(client, session, git_repo):
    body = gitea_push()
    register(session, git_repo, body, "gitea")
    assert post_gitea(client, b"[1, 2]").status_code == 400
    no_ref = gitea_push(ref=None)
    response = post_gitea(client, no_ref)
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == "payload has no 'ref'"
    bad_sha = post_gitea(client, gitea_push(after="$(reboot)"))
    assert bad_sha.get_json()["error"]["code"] == "invalid_sha"
    no_event = client.post("/hooks/gitea", data=body,
                           headers={"X-Gitea-Signature": hex_signature(body)})
    assert no_event.status_code == 400
    assert no_event.get_json()["error"]["code"] == "missing_header"
    assert builds(session) == []


def vectors() -> list[dict]:
    entries = json.loads((WEBHOOKS / "SIGNATURE_VECTORS.json").read_text())
    return [entry for entry in entries if entry["forge"] in ("gitea", "gogs")]


@pytest.mark.parametrize("vector", vectors(), ids=lambda vector: vector["payload_file"])
def test_published_gitea_and_gogs_signatures_verify(vector):
    body = (WEBHOOKS / vector["payload_file"]).read_bytes()
    gitea.verify(vector["secret"], {vector["header"]: vector["value"]}, body)
    with pytest.raises(WebhookRejected) as rejected:
        gitea.verify(SECRET, {vector["header"]: vector["value"]}, body)
    assert rejected.value.status == 401


@pytest.mark.parametrize("path, forge, name, secret", [
    ("/hooks/gitea", "gitea", "pull_request.edited.signed-vector",
     "71295b197fa25f4356d2fb9965df3f2379d903d7"),
    ("/hooks/gogs", "gogs", "pull_request.edited.signed-vector", "topsecret"),
])
def test_published_deliveries_are_accepted_and_edits_ignored(client, session, git_repo, path,
                                                             forge, name, secret):
    body, headers = recorded(forge, name)
    register(session, git_repo, body, "gitea", secret=secret)
    response = client.post(path, data=body, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["reason"] == "pull_request action 'edited' does not trigger builds"


def test_published_gogs_push_builds(client, session, git_repo):
    body, headers = recorded("gogs", "push.signed-vector")
    register(session, git_repo, body, "gitea", secret="48dk7eGJ")
    assert client.post("/hooks/gogs", data=body, headers=headers).status_code == 202
    [build] = builds(session)
    assert (build.sha, build.author) == ("68885af8c4e894ea05889e854486f022b6cb3fb2",
                                         "etienne.fachaux")


# Every forge -----------------------------------------------------------------------------

def test_github_pull_request_from_a_fork_is_marked(client, session, git_repo):
    body, headers = recorded("github", "pull_request.opened-from-fork")
    store.add_repo(session, json.loads(body)["repository"]["full_name"], "github",
                   str(git_repo.path), SECRET)
    assert client.post("/hooks/github", data=body, headers=headers).status_code == 202
    assert builds(session)[0].fork is True


@pytest.mark.parametrize("path, forge, name", [
    ("/hooks/gitlab", "gitlab", "push.gitlab-com"),
    ("/hooks/gitea", "gitea", "push"),
    ("/hooks/gogs", "gogs", "push"),
])
def test_unknown_repository_is_404(client, session, git_repo, path, forge, name):
    body, headers = recorded(forge, name)
    response = client.post(path, data=body, headers=headers)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "unknown_repo"


def test_repository_of_another_forge_is_404(client, session, git_repo):
    body, headers = recorded("gitea", "push")
    store.add_repo(session, "gogits/hello-world", "gitlab", str(git_repo.path), SECRET)
    response = client.post("/hooks/gitea", data=body, headers=headers)
    assert response.status_code == 404
    assert "--forge gitea" in response.get_json()["error"]["message"]


def test_unknown_forge_is_404(client):
    response = client.post("/hooks/bitbucket", data=b"{}")
    assert response.status_code == 404
    assert response.get_json()["error"] == {
        "code": "unknown_forge",
        "message": "no forge is called 'bitbucket'; point the webhook at /hooks/ followed by "
                   "one of github, gitlab, gitea"}


def test_registry_names_every_forge_once():
    assert store.FORGES == ("github", "gitlab", "gitea")
    assert forges.get("forgejo") is forges.get("gogs") is forges.get("gitea") is gitea
    assert forges.get("bitbucket") is None


EVENT = {"github": "X-GitHub-Event", "gitlab": "X-Gitlab-Event", "gitea": "X-Gitea-Event"}
PUSH = {"github": "push", "gitlab": "Push Hook", "gitea": "push"}


@pytest.mark.parametrize("forge, event, payload, message", [
    ("github", "pull_request", {"action": "opened"}, "payload has no pull_request object"),
    ("gitea", "pull_request", {"action": "opened", "pull_request": []},
     "payload has no pull_request object"),
    ("github", "pull_request", {"action": "opened", "pull_request": {"number": 1}},
     "pull_request needs number, head.sha and base.ref"),
    ("gitea", "pull_request", {"action": "opened", "pull_request": {"head": {"sha": "a"}}},
     "pull_request needs number, head.sha and base.ref"),
    ("gitlab", "Merge Request Hook", {}, "payload has no object_attributes object"),
    ("gitlab", "Merge Request Hook", {"object_attributes": {"action": "open", "iid": 1}},
     "merge request needs object_attributes.iid, last_commit.id and target_branch"),
])
def test_each_forge_names_its_own_missing_pull_request_fields(forge, event, payload, message):
    with pytest.raises(WebhookRejected) as rejected:
        forges.get(forge).parse({EVENT[forge]: event}, payload)
    assert (rejected.value.status, rejected.value.code, rejected.value.message) == (
        400, "missing_field", message)


@pytest.mark.parametrize("forge", ["github", "gitlab", "gitea"])
def test_a_push_to_neither_a_branch_nor_a_tag_is_ignored(forge):
    payload = {"ref": "refs/notes/commits", "after": "a" * 40}
    result = forges.get(forge).parse({EVENT[forge]: PUSH[forge]}, payload)
    assert result == Ignored("push to refs/notes/commits is neither a branch nor a tag")
