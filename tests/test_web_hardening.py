"""The web side of the security review's smaller holes: what a webhook may learn or break,
what a build page links to, the headers every answer carries, and webhook secrets at rest."""

import json
import socket
from datetime import datetime

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from ci import store
from ci.pipeline.config import ConfigError, parse_pipeline
from ci.store import db, intake
from tests.conftest import (GITHUB, SECRET, add_user, post_hook, procfile_web, push_payload,
                            sign, token_headers)
from tests.reported_jobs import report_job

SHA = "d" * 40
WRONG = "sha256=" + "0" * 64


def unknown_answer(client, full_name: str):
    """What the webhook answers for a repository nobody registered."""
    response = post_hook(client, push_payload(full_name, SHA))
    assert response.status_code == 404
    return response.get_json()


# (a) A private repository's existence does not leak through the webhook ----------------

@pytest.mark.parametrize("signature", [WRONG, ""])
def test_private_repository_with_a_failing_signature_answers_like_an_unknown_one(
        client, session, registered, signature):
    store.update_repo(session, registered, private=True)
    response = post_hook(client, push_payload("octo/project", SHA), signature=signature)
    assert response.status_code == 404
    stranger = unknown_answer(client, "octo/stranger")
    assert response.get_json() == json.loads(
        json.dumps(stranger).replace("octo/stranger", "octo/project"))
    assert response.get_json()["error"]["message"].startswith(
        "repository octo/project is not registered; ")


def test_private_gitlab_repository_with_a_wrong_token_answers_404(client, session, git_repo):
    repo = store.add_repo(session, "group/secret", "gitlab", str(git_repo.path), SECRET)
    store.update_repo(session, repo, private=True)
    payload = json.loads((GITHUB.parent / "gitlab" / "push.docs.json").read_bytes())
    payload["project"]["path_with_namespace"] = "group/secret"
    response = client.post("/hooks/gitlab", json=payload, headers={
        "X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "guess"})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "unknown_repo"


def test_public_repository_keeps_its_401_and_a_private_one_still_builds(
        client, session, registered):
    assert post_hook(client, push_payload("octo/project", SHA), signature=WRONG).status_code == 401
    store.update_repo(session, registered, private=True)
    assert post_hook(client, push_payload("octo/project", SHA)).status_code == 202


# (b) Nesting too deep for Python's parser is malformed JSON, not a crash ---------------

@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 100_000])
def test_deeply_nested_json_is_400_malformed_json(client, registered, body):
    response = post_hook(client, body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "malformed_json"
    assert "nested too deeply" in error["message"]


# (c) A chunked body over the limit is 413 on the real web server -----------------------

LIMIT = 16 * 1024


@pytest.fixture
def small_limit_web(app, registered, redis_url, tmp_path):
    """The Procfile's gunicorn on the test's database, taking webhooks of LIMIT bytes."""
    with procfile_web(tmp_path, {"SLIPWAY_REDIS_URL": redis_url,
                                 "SLIPWAY_DATA_DIR": str(tmp_path / "data"),
                                 "SLIPWAY_BASE_URL": "http://ci.test",
                                 "SLIPWAY_MAX_WEBHOOK_BYTES": str(LIMIT)}) as port:
        yield port


def _exchange(port: int, head: str, body: bytes) -> bytes:
    """Send one request and read the answer until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
        connection.sendall(head.encode() + body)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received


def _post_chunked(port: int, body: bytes, chunk_size: int = 1000) -> tuple[int, bytes]:
    """A signed push delivered with ``Transfer-Encoding: chunked``: (status, body)."""
    head = ("POST /hooks/github HTTP/1.1\r\nHost: ci.test\r\nTransfer-Encoding: chunked\r\n"
            "Content-Type: application/json\r\nX-GitHub-Event: push\r\n"
            f"X-Hub-Signature-256: {sign(body)}\r\nConnection: close\r\n\r\n")
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[at:at + chunk_size]), body[at:at + chunk_size])
                      for at in range(0, len(body), chunk_size))
    answer = _exchange(port, head, chunks + b"0\r\n\r\n")
    headers, _, content = answer.partition(b"\r\n\r\n")
    return int(headers.split(b" ", 2)[1]), content


def test_chunked_body_over_the_limit_is_413_and_one_under_it_builds(small_limit_web):
    payload = json.loads(push_payload("octo/project", SHA))
    fits = json.dumps(payload).encode()
    assert len(fits) < LIMIT
    status, content = _post_chunked(small_limit_web, fits)
    assert status == 202, content
    payload["head_commit"]["message"] = "x" * LIMIT
    status, content = _post_chunked(small_limit_web, json.dumps(payload).encode())
    assert status == 413, content
    assert json.loads(content)["error"] == {
        "code": "request_entity_too_large",
        "message": f"request body is larger than {LIMIT} bytes"}


# (d) Forge-supplied URLs are links only when they are http(s) --------------------------

@pytest.mark.parametrize("url", ["javascript:alert(document.domain)", " JavaScript:alert(1)",
                                 "data:text/html,<script>alert(1)</script>",
                                 "vbscript:msgbox(1)", "//evil.example/x"])
def test_a_compare_url_that_is_not_http_is_no_link(client, registered, url):
    payload = json.loads(push_payload("octo/project", SHA))
    payload["compare"] = url
    assert post_hook(client, json.dumps(payload).encode()).status_code == 202
    page = client.get("/octo/project/builds/1").get_data(as_text=True)
    assert "alert(" not in page and "evil.example" not in page
    assert f"<dd class=\"mono\">{SHA[:12]}</dd>" in page


def test_an_https_compare_url_stays_a_link(client, registered):
    payload = json.loads(push_payload("octo/project", SHA))
    assert post_hook(client, json.dumps(payload).encode()).status_code == 202
    page = client.get("/octo/project/builds/1").get_data(as_text=True)
    assert f'<a href="{payload["compare"]}">{SHA[:12]}</a>' in page


def test_a_pull_request_html_url_that_is_not_http_is_no_link(client, registered):
    payload = json.loads((GITHUB / "pull_request.opened.json").read_bytes())
    payload["repository"]["full_name"] = "octo/project"
    payload["pull_request"]["html_url"] = "javascript:alert(1)"
    body = json.dumps(payload).encode()
    assert post_hook(client, body, event="pull_request").status_code == 202
    page = client.get("/octo/project/builds/1").get_data(as_text=True)
    assert "javascript:" not in page


# (e) Security headers on every answer --------------------------------------------------

HEADERS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "same-origin",
           "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
           "Cross-Origin-Opener-Policy": "same-origin"}
CSP_PARTS = ("default-src 'self'", "frame-ancestors 'none'", "object-src 'none'",
             "base-uri 'none'", "script-src 'self'")


def assert_hardened(response) -> None:
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, (response.request.path, name)
    policy = [part.strip() for part in response.headers["Content-Security-Policy"].split(";")]
    for part in CSP_PARTS:
        assert part in policy, (response.request.path, part)
    assert not any("unsafe-inline" in part for part in policy if part.startswith("script-src"))


def test_pages_api_badges_errors_and_assets_carry_security_headers(client, registered):
    assert post_hook(client, push_payload("octo/project", SHA)).status_code == 202
    for path in ("/", "/octo/project", "/octo/project/builds/1", "/login", "/api/repos",
                 "/api/repos/octo/project/builds/1", "/octo/project/badge.svg",
                 "/nowhere/at-all", "/api/openapi.json"):
        response = client.get(path)
        assert response.status_code in (200, 404), path
        assert_hardened(response)
    assert_hardened(post_hook(client, b"{not json"))


def test_every_kind_of_answer_carries_security_headers(
        client, session, resources, redis_client, registered, api_token):
    report_job(client, session, resources, redis_client, {"test": "ok\n" * 1000})
    job = client.get("/api/repos/octo/project/builds/1/jobs/1").get_json()
    gzip = {"Accept-Encoding": "gzip"}
    answers = {
        "text": client.get("/octo/project/builds/1/jobs/1/log.txt"),
        "text, gzipped": client.get("/octo/project/builds/1/jobs/1/log.txt", headers=gzip),
        "stream": client.get(job["events_url"].removeprefix("http://ci.test")),
        "page error": client.get("/octo/project/builds/1/jobs/1/log.txt?download=x"),
        "JSON error": client.post("/api/repos/octo/project/builds", json={"sha": "x"},
                                  headers=api_token),
        "401": client.get("/api/repos", headers={"Authorization": "Bearer wrong"}),
        "405": client.post("/api/openapi.json"),
    }
    for path in ("/octo/project/builds/1", "/octo/project/badge.svg", "/static/slipway.css"):
        for headers in ({}, gzip):
            first = client.get(path, headers=headers)
            answers[f"{path} {headers}"] = first
            answers[f"{path} {headers}, 304"] = client.get(
                path, headers={**headers, "If-None-Match": first.headers["ETag"]})
    assert answers["text, gzipped"].headers["Content-Encoding"] == "gzip"
    for kind, response in answers.items():
        assert response.status_code in (200, 304, 400, 401, 405), kind
        assert_hardened(response)
        response.close()
    assert {response.status_code for response in answers.values()} == {200, 304, 400, 401, 405}


def test_the_build_page_loads_its_only_script_from_its_own_origin(client, registered):
    assert post_hook(client, push_payload("octo/project", SHA)).status_code == 202
    page = client.get("/octo/project/builds/1").get_data(as_text=True)
    scripts = page.split("<script")[1:]
    assert len(scripts) == 1
    source = scripts[0].split('src="', 1)[1].split('"', 1)[0]
    assert source.startswith("/static/live.js?v=") and "></script>" in scripts[0]
    assert "<style" not in page and " onclick=" not in page
    assert 'data-events="/octo/project/builds/1/events"' in page  # 'self' too
    with client.get(source) as script:
        assert script.status_code == 200 and b"EventSource" in script.data
        assert_hardened(script)


# (f) Webhook secrets are encrypted at rest ---------------------------------------------

def stored_secret(session, full_name: str) -> str:
    session.rollback()
    return session.execute(text("SELECT webhook_secret FROM repos WHERE full_name = :name"),
                           {"name": full_name}).scalar_one()


def test_cli_repo_add_stores_the_webhook_secret_encrypted(cli, client, session, git_repo):
    added = cli("repo", "add", "octo/cli", "--clone-url", str(git_repo.path),
                "--secret", SECRET)
    assert added.exit_code == 0, added.output
    assert SECRET not in stored_secret(session, "octo/cli")
    assert post_hook(client, push_payload("octo/cli", SHA)).status_code == 202
    assert post_hook(client, push_payload("octo/cli", SHA), secret="wrong").status_code == 401


def test_api_repo_registration_stores_the_webhook_secret_encrypted(client, session, git_repo):
    admin = token_headers(session, add_user(session, "root", admin=True))
    added = client.post("/api/repos", headers=admin, json={
        "full_name": "octo/api", "clone_url": str(git_repo.path), "secret": SECRET})
    assert added.status_code == 201
    assert SECRET not in stored_secret(session, "octo/api")
    assert post_hook(client, push_payload("octo/api", SHA)).status_code == 202
    assert post_hook(client, push_payload("octo/api", SHA), secret="wrong").status_code == 401
    empty = client.post("/api/repos", headers=admin, json={
        "full_name": "octo/empty", "clone_url": str(git_repo.path), "secret": ""})
    assert empty.status_code == 400
    assert "the webhook secret is empty" in empty.get_json()["error"]["message"]


def test_a_secret_stored_in_clear_before_still_works_and_the_next_upgrade_encrypts_it(
        cli, client, session, registered):
    assert stored_secret(session, "octo/project") == SECRET  # as rows were before 0007
    assert post_hook(client, push_payload("octo/project", SHA)).status_code == 202
    upgraded = cli("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert SECRET not in stored_secret(session, "octo/project")
    assert post_hook(client, push_payload("octo/project", "e" * 40)).status_code == 202
    assert post_hook(client, push_payload("octo/project", SHA), secret="x").status_code == 401


# (g) Refs and branches fit their columns, in bytes, on every database ------------------

def test_a_ref_over_255_bytes_is_400_naming_the_limit(client, registered, session):
    payload = json.loads(push_payload("octo/project", SHA))
    payload["ref"] = "refs/heads/" + "é" * 123  # 257 bytes, 134 characters
    response = post_hook(client, json.dumps(payload).encode())
    assert response.status_code == 400
    assert response.get_json()["error"] == {
        "code": "invalid_ref",
        "message": "ref is 257 bytes long; Slipway keeps refs of at most 255 bytes (UTF-8)"}
    payload["ref"] = "refs/heads/" + "é" * 122  # 255 bytes: fits
    assert post_hook(client, json.dumps(payload).encode()).status_code == 202


def test_a_pull_request_base_branch_over_255_bytes_or_a_huge_number_is_400(client, registered):
    payload = json.loads((GITHUB / "pull_request.opened.json").read_bytes())
    payload["repository"]["full_name"] = "octo/project"
    payload["pull_request"]["base"]["ref"] = "b" * 256
    response = post_hook(client, json.dumps(payload).encode(), event="pull_request")
    assert response.status_code == 400
    assert "at most 255 bytes" in response.get_json()["error"]["message"]
    payload["pull_request"]["base"]["ref"] = "main"
    payload["number"] = 10 ** 300
    response = post_hook(client, json.dumps(payload).encode(), event="pull_request")
    assert response.status_code == 400
    assert response.get_json()["error"] == {
        "code": "invalid_number",
        "message": "the pull or merge request number must be from 1 to 2147483647"}


def test_a_ref_with_control_characters_is_400(client, registered):
    payload = json.loads(push_payload("octo/project", SHA))
    payload["ref"] = "refs/heads/main\u0000x"
    response = post_hook(client, json.dumps(payload).encode())
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_ref"


def test_text_no_database_can_store_is_replaced_not_a_500(client, registered, session):
    payload = json.loads(push_payload("octo/project", SHA))
    payload["head_commit"]["message"] = "fix\u0000 it \ud800 now"
    payload["head_commit"]["author"]["username"] = "dev\u0000\udfff"
    response = post_hook(client, json.dumps(payload).encode())
    assert response.status_code == 202
    session.rollback()
    stored = session.execute(text("SELECT message, author FROM builds")).one()
    assert tuple(stored) == ("fix\ufffd it \ufffd now", "dev\ufffd\ufffd")


def test_migration_0007_keeps_clear_secrets_and_refuses_a_downgrade_that_would_lose_them(
        new_database):
    engine = db.make_engine(new_database(migrated=False))
    db.upgrade(engine, "0006")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO repos (forge, full_name, clone_url, webhook_secret, default_branch, "
            "last_build_number, created_at, private) VALUES ('github', 'octo/old', '/x', "
            ":secret, 'main', 0, :created, :private)"),
            {"secret": SECRET, "created": datetime(2026, 1, 1), "private": False})
    db.upgrade(engine)
    repo = intake.get_repo_with_secrets(db.make_sessionmaker(engine)(), "octo/old")
    assert (repo.webhook_secret, repo.webhook_secret_encrypted) == (SECRET, False)
    with db.make_sessionmaker(engine, writes=True)() as writer:
        assert store.encrypt_clear_webhook_secrets(writer, lambda secret: "sealed") == 1
    with pytest.raises(RuntimeError, match="1 repositories have encrypted webhook secrets"):
        _downgrade(engine, "0006")
    engine.dispose()


def _downgrade(engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_a_webhook_decrypts_its_secret_once_per_process(client, session, git_repo, resources):
    from ci.accounts import webhook_secrets  # imported here: the module came with the fix

    webhook_secrets.register(session, resources.settings, "octo/cached", "github",
                             str(git_repo.path), SECRET)
    webhook_secrets._decrypted.cache_clear()
    for sha in ("1" * 40, "2" * 40, "3" * 40):
        assert post_hook(client, push_payload("octo/cached", sha)).status_code == 202
    assert webhook_secrets._decrypted.cache_info()[:2] == (2, 1)  # hits, misses


# (h) An env value the kernel would refuse is a config error ---------------------------

#: Linux refuses to start a program with one ``NAME=value`` longer than this (with its NUL).
MAX_ARG_STRLEN = 128 * 1024


@pytest.mark.parametrize("text, path, line", [
    ("env:\n  SMALL: ok\n  BIG: {value}\nsteps: [env]\n", "env.BIG", 3),
    ("steps:\n  - run: env\n    env:\n      BIG: {value}\n", "steps[0].env.BIG", 4),
    ("services:\n  db:\n    image: postgres:16\n    env: {{BIG: {value}}}\nsteps: [env]\n",
     "services.db.env.BIG", 4),
])
def test_an_env_value_over_128_kib_is_refused_naming_key_line_and_limit(text, path, line):
    value = "x" * (MAX_ARG_STRLEN - len("BIG="))  # with its NUL, one byte too many
    with pytest.raises(ConfigError) as info:
        parse_pipeline(text.format(value=value))
    assert [(problem.path, problem.line) for problem in info.value.problems] == [(path, line)]
    assert info.value.problems[0].message == (
        f"`BIG=…` is {MAX_ARG_STRLEN} bytes, over Linux's limit of 128 KiB for one variable "
        f"(MAX_ARG_STRLEN: {MAX_ARG_STRLEN} bytes counting its terminating NUL); put larger "
        "values in a file")
    assert str(info.value).startswith(f"`.slipway.yml` line {line}, {path}: `BIG=…`")


def test_an_env_value_just_under_the_limit_is_accepted():
    value = "x" * (MAX_ARG_STRLEN - len("NAME=") - 1)
    assert parse_pipeline(f"env:\n  NAME: {value}\nsteps: [env]\n").env["NAME"] == value
