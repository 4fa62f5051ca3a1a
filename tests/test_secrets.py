"""Secrets: encrypted at rest, given only to the steps that name them in trusted builds,
and never visible in the live stream or the archived log."""

import base64
import json

import pytest
import requests
from sqlalchemy import select

from ci.accounts import repo_secrets
from ci.logs import storage
from ci.pipeline.logformat import to_text
from ci.store.models import Build, Secret
from tests.conftest import GITHUB, IMAGE, post_hook, push_payload, sse_events

VALUE = "s3cr3t-deploy-t0ken-value"
PIPELINE = f"""\
image: {IMAGE}
steps:
  - name: deploy
    secrets: [DEPLOY_TOKEN]
    run: |
      printf 'first half: %s' "$(printf %s "$DEPLOY_TOKEN" | cut -c1-9)"
      sleep 0.3
      printf '%s <- rest\\n' "$(printf %s "$DEPLOY_TOKEN" | cut -c10-)"
      printf %s "$DEPLOY_TOKEN" | base64
      echo "whole: $DEPLOY_TOKEN"
  - name: other
    run: echo "other step sees [${{DEPLOY_TOKEN:-nothing}}]"
"""


@pytest.fixture
def with_secret(registered, session, resources):
    repo_secrets.set_secret(session, resources.settings, registered, "DEPLOY_TOKEN", VALUE)
    return registered


def test_secrets_are_encrypted_at_rest(with_secret, session):
    stored = session.scalar(select(Secret))
    assert stored.name == "DEPLOY_TOKEN"
    assert VALUE not in stored.value
    assert VALUE.encode() not in base64.b64decode(stored.value + "==", altchars=b"-_")


def test_bad_secret_names_are_refused(registered, session, resources):
    from ci.store import StoreError

    with pytest.raises(StoreError, match="is not a secret name"):
        repo_secrets.set_secret(session, resources.settings, registered, "deploy-token", "x" * 8)


@pytest.mark.docker
def test_a_secret_reaches_only_its_step_and_never_the_logs(
        server, client, git_repo, with_secret, run_queue, session, resources, docker_client):
    sha = git_repo.commit({".slipway.yml": PIPELINE})
    assert post_hook(client, push_payload("octo/project", sha)).status_code == 202
    run_queue()
    session.rollback()
    build = session.scalar(select(Build))
    assert build.status == "passed", build.error
    archived = to_text(storage.read_archive(resources.settings.log_dir, build.jobs[0].id))
    streamed = "".join(data["html"] for _id, _kind, data in sse_events(
        requests.get(f"{server}/octo/project/builds/1/jobs/1/events", stream=True, timeout=30)))
    for text in (archived, streamed):
        assert VALUE not in text
        assert VALUE[:9] not in text and VALUE[9:] not in text
        assert base64.b64encode(VALUE.encode()).decode() not in text
        assert "whole: ****" in text
        assert "other step sees [nothing]" in text
    # The value was printed in two chunks 0.3 s apart, and is still masked whole.
    assert "first half: **** <- rest" in archived
    assert "first half: **** &lt;- rest" in streamed


@pytest.mark.docker
def test_a_pull_request_from_a_fork_gets_no_secrets(
        client, git_repo, with_secret, run_queue, session, resources, docker_client):
    sha = git_repo.commit({".slipway.yml": PIPELINE})
    payload = json.loads((GITHUB / "pull_request.opened-from-fork.json").read_bytes())
    payload["repository"]["full_name"] = "octo/project"
    payload["pull_request"]["base"]["repo"]["full_name"] = "octo/project"
    payload["pull_request"]["head"]["sha"] = sha
    assert post_hook(client, json.dumps(payload).encode(), event="pull_request").status_code == 202
    run_queue()
    session.rollback()
    build = session.scalar(select(Build))
    assert build.fork
    assert build.status == "failed"
    assert build.error == ("step 'deploy' needs DEPLOY_TOKEN: secrets are never given to pull "
                           "requests from forks")
    text = to_text(storage.read_archive(resources.settings.log_dir, build.jobs[0].id))
    assert "first half" not in text


def test_the_api_lists_names_and_never_values(client, with_secret, api_token):
    auth = api_token
    listed = client.get("/api/repos/octo/project/secrets", headers=auth)
    assert listed.get_json() == {"secrets": ["DEPLOY_TOKEN"]}
    assert VALUE not in listed.get_data(as_text=True)
    put = client.put("/api/repos/octo/project/secrets/OTHER", json={"value": "another-value"},
                     headers=auth)
    assert put.get_json() == {"secrets": ["DEPLOY_TOKEN", "OTHER"]}
    assert client.put("/api/repos/octo/project/secrets/OTHER", json={}, headers=auth).status_code == 400
    assert client.delete("/api/repos/octo/project/secrets/OTHER", headers=auth).status_code == 200
    assert client.delete("/api/repos/octo/project/secrets/OTHER", headers=auth).status_code == 404
    assert client.get("/api/repos/octo/project/secrets").status_code == 401


def test_the_job_payload_in_redis_carries_secrets_sealed(client, git_repo, with_secret,
                                                         redis_client):
    from rq import Queue

    from ci.pipeline import keys

    sha = git_repo.commit({".slipway.yml": PIPELINE})
    assert post_hook(client, push_payload("octo/project", sha)).status_code == 202
    [job] = Queue(keys.JOBS_QUEUE, connection=redis_client,
                  serializer=keys.RQ_SERIALIZER).get_jobs()
    payload = json.dumps(job.args)
    assert VALUE not in payload
    assert job.args[0]["sealed_secrets"]
    assert VALUE.encode() not in b"".join(v for k, v in redis_client.hgetall(job.key).items())


def test_a_runner_without_the_key_refuses_secrets_with_a_clear_message():
    from runners.sealed_secrets import SecretsUnavailable, open_secrets

    with pytest.raises(SecretsUnavailable, match="set SLIPWAY_ENCRYPTION_KEY"):
        open_secrets(None, "sealed")
    assert open_secrets(None, "") == {}
