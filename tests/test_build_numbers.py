"""Build numbers under concurrent webhooks, and the webhook's error paths, on SQLite and
PostgreSQL alike: the Procfile's gunicorn takes 500 webhooks from 8 threads, and every
repository's builds are numbered 1, 2, 3, … with none lost and none repeated."""

from __future__ import annotations

import http.client
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from ci import store
from ci.store.models import Build, Job, Repo
from tests.conftest import SECRET, post_hook, procfile_web, push_payload, sign

REPOS = ("octo/one", "octo/two", "octo/three")
WEBHOOKS = 500
THREADS = 8


@pytest.fixture
def web(app, session, git_repo, redis_url, tmp_path):
    """gunicorn started from the Procfile on the test's database, with REPOS registered."""
    for name in REPOS:
        store.add_repo(session, name, "github", str(git_repo.path), SECRET)
    with procfile_web(tmp_path, {"SLIPWAY_REDIS_URL": redis_url,
                                 "SLIPWAY_DATA_DIR": str(tmp_path / "data"),
                                 "SLIPWAY_BASE_URL": "http://ci.test"}) as port:
        yield port


def _send(port: int, method: str, path: str, body: bytes,
          headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body, headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _webhook(port: int, index: int) -> tuple[str, int, bytes]:
    repo = REPOS[index % len(REPOS)]
    body = push_payload(repo, f"{index + 1:040x}", message=f"change {index}")  # 0: a deletion
    status, answer = _send(port, "POST", "/hooks/github", body, {
        "Content-Type": "application/json", "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": sign(body)})
    return repo, status, answer


def test_concurrent_webhooks_get_distinct_numbers_per_repository_and_none_is_lost(
        web, session, database_kind):
    started = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(lambda index: _webhook(web, index), range(WEBHOOKS)))
    elapsed = time.monotonic() - started
    print(f"\n{database_kind}: {WEBHOOKS} webhooks from {THREADS} threads in {elapsed:.2f} s "
          f"({WEBHOOKS / elapsed:.0f}/s)")

    assert Counter(status for _, status, _ in answers) == {202: WEBHOOKS}
    sent = Counter(repo for repo, _, _ in answers)
    session.rollback()
    for name in REPOS:
        repo = store.get_repo(session, name)
        numbers = session.scalars(select(Build.number).where(Build.repo_id == repo.id)
                                  .order_by(Build.number)).all()
        assert numbers == list(range(1, sent[name] + 1)), name
        assert repo.last_build_number == sent[name]
    assert session.scalar(select(func.count()).select_from(Job)) == WEBHOOKS


def _written(session) -> tuple[int, int, int]:
    """Builds, jobs and the repositories' build counters: what a rejected webhook must
    leave as it was."""
    session.rollback()
    return (session.scalar(select(func.count()).select_from(Build)),
            session.scalar(select(func.count()).select_from(Job)),
            session.scalar(select(func.sum(Repo.last_build_number))))


def _push(ref: str = "refs/heads/main", **changes) -> dict:
    import json

    payload = json.loads(push_payload("octo/project", "a" * 40))
    payload["ref"] = ref
    payload.update(changes)
    return payload


@pytest.mark.parametrize("body, signature, status, code", [
    (_push("refs/heads/" + "b" * 245), None, 400, "invalid_ref"),
    (_push("refs/heads/" + "é" * 123), None, 400, "invalid_ref"),
    (_push(), "sha256=" + "0" * 64, 401, None),
    (_push(repository={"full_name": "octo/unknown"}), None, 404, None),
    (b'{"ref": ', None, 400, None),
], ids=["ref-over-255-bytes", "multibyte-ref-over-255-bytes", "bad-signature",
        "unknown-repository", "malformed-json"])
def test_a_rejected_webhook_writes_nothing_and_the_next_one_gets_the_next_number(
        client, registered, session, body, signature, status, code):
    import json

    assert post_hook(client, push_payload("octo/project", "a" * 40)).status_code == 202
    before = _written(session)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()

    rejected = post_hook(client, raw, signature=signature)

    assert rejected.status_code == status
    if code:
        assert rejected.get_json()["error"]["code"] == code
    assert _written(session) == before
    assert post_hook(client, push_payload("octo/project", "a" * 40)).get_json()[
        "build"]["number"] == 2


def test_the_longest_refs_authors_and_deliveries_are_stored_and_a_repeat_is_a_duplicate(
        client, registered, session):
    import json

    payload = _push("refs/heads/" + "é" * 122)  # 255 bytes in UTF-8, 133 characters
    payload["head_commit"]["author"]["username"] = "a" * 1000
    payload["head_commit"]["message"] = "m" * 20_000
    body, delivery = json.dumps(payload).encode(), "d" * 300

    first = post_hook(client, body, delivery=delivery)
    again = post_hook(client, body, delivery=delivery)

    assert first.status_code == 202
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    assert again.get_json()["build"] == first.get_json()["build"]
    session.rollback()
    build = session.scalars(select(Build)).one()
    assert build.ref == "refs/heads/" + "é" * 122
    assert (len(build.author), len(build.message), len(build.delivery)) == (255, 10_000, 120)
    assert _written(session) == (1, 1, 1)
