"""Slipway over a Redis that speaks TLS (``rediss://``) and asks for a password.

A throwaway CA signs the certificate of a real redis-server listening on TLS only; the
clients find that CA through the URL (``?ssl_ca_certs=``), as the README says. A second CA,
which signed nothing the server shows, stands for a wrong CA bundle.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from rq import Queue, SimpleWorker
from rq.job import Job as RQJob

from ci import create_app
from ci.builds import dispatch
from ci.pipeline import keys
from ci.pipeline.spec import JobSpec
from ci.redis_client import connect
from ci.settings import SettingsError, load_settings
from tests.conftest import SLIPWAY, free_port, wait_for

PASSWORD = "tls-test-password-3f9a"


@dataclass(frozen=True)
class TlsRedis:
    port: int
    ca: Path
    wrong_ca: Path

    def url(self, ca: Path | None = None) -> str:
        return (f"rediss://:{PASSWORD}@127.0.0.1:{self.port}/0"
                f"?ssl_ca_certs={ca or self.ca}&ssl_cert_reqs=required")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
            "-subj", f"/CN=Slipway test {name}", cwd=folder)


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory) -> Iterator[TlsRedis]:
    folder = tmp_path_factory.mktemp("tls-redis")
    make_ca(folder, "ca")
    make_ca(folder, "wrong-ca")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=folder)
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext",
            cwd=folder)
    port = free_port()
    config = (f"port 0\ntls-port {port}\nbind 127.0.0.1\ntls-auth-clients no\n"
              f"tls-cert-file {folder / 'server.pem'}\ntls-key-file {folder / 'server.key'}\n"
              f"tls-ca-cert-file {folder / 'ca.pem'}\nrequirepass {PASSWORD}\n"
              f"save \"\"\nappendonly no\ndir {folder}\n")
    server = subprocess.Popen([shutil.which("redis-server") or "/usr/sbin/redis-server", "-"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    server.stdin.write(config)
    server.stdin.close()
    tls = TlsRedis(port, folder / "ca.pem", folder / "wrong-ca.pem")
    probe = connect(tls.url(), socket_connect_timeout=1, socket_timeout=1)
    wait_for(lambda: _pings(probe), timeout=10)
    probe.close()
    yield tls
    server.terminate()
    server.wait(timeout=10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def tls_client(tls_redis: TlsRedis) -> Iterator[redis.Redis]:
    client = connect(load_settings({"SLIPWAY_REDIS_URL": tls_redis.url()}).redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def add(a: int, b: int) -> int:
    """An RQ job for the worker below."""
    return a + b


def test_a_settings_client_an_rq_worker_and_pubsub_work_over_tls(
    tls_redis: TlsRedis, tls_client: redis.Redis
) -> None:
    assert tls_client.connection_pool.connection_class is redis.SSLConnection
    tls_client.set("greeting", "over TLS")
    assert tls_client.get("greeting") == b"over TLS"

    pubsub = tls_client.pubsub()
    pubsub.subscribe("slipway:test")
    wait_for(lambda: pubsub.get_message(timeout=0.1))  # the subscription's confirmation
    tls_client.publish("slipway:test", "hello")
    message = wait_for(lambda: pubsub.get_message(timeout=0.1))
    assert message["data"] == b"hello"
    pubsub.close()

    queue = Queue("slipway-tls-test", connection=tls_client)
    job = queue.enqueue(add, 2, 3)
    assert SimpleWorker([queue], connection=tls_client).work(burst=True)
    assert RQJob.fetch(job.id, connection=tls_client).return_value() == 5


def test_the_web_app_talks_to_redis_over_tls(tls_redis: TlsRedis, tmp_path: Path) -> None:
    app = create_app({"data_dir": tmp_path, "database_url": f"sqlite:///{tmp_path / 'db'}",
                      "redis_url": tls_redis.url(), "base_url": "http://ci.test",
                      "secret_key": "test"})
    client = app.extensions["slipway"].redis
    assert client.connection_pool.connection_class is redis.SSLConnection
    assert client.ping()


def run_env(tls_redis: TlsRedis, tmp_path: Path, url: str) -> dict[str, str]:
    return {**os.environ, "SLIPWAY_REDIS_URL": url, "SLIPWAY_DATA_DIR": str(tmp_path),
            "SLIPWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'slipway.db'}",
            "SLIPWAY_RUNNER_DIR": str(tmp_path / "runner")}


def test_the_recorder_reads_runner_events_over_tls(
    tls_redis: TlsRedis, tls_client: redis.Redis, tmp_path: Path
) -> None:
    # An event no recorder can apply is set aside in the dead-letter stream: seeing it
    # there proves a real `slipway recorder` read the events stream and wrote back over TLS.
    tls_client.xadd(keys.EVENTS_STREAM, {"e": "not an event"})
    recorder = subprocess.Popen([SLIPWAY, "recorder"], env=run_env(tls_redis, tmp_path,
                                                                   tls_redis.url()),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: tls_client.xlen(keys.EVENTS_DEAD_STREAM) == 1, timeout=60)
    finally:
        recorder.terminate()
        _out, errors = recorder.communicate(timeout=30)
    assert PASSWORD not in errors


@pytest.mark.docker
def test_runner_workers_take_jobs_over_tls(
    tls_redis: TlsRedis, tls_client: redis.Redis, tmp_path: Path
) -> None:
    # A stale attempt is refused before anything runs: the job ends without Docker, and
    # its result, stored by a worker of the pool, is the proof that it got the job.
    spec = JobSpec(job_id=41, attempt=1, build_id=1, repo="octo/project", clone_url="x",
                   sha="0" * 40, ref="refs/heads/main", event="push")
    dispatch.enqueue(tls_client, spec)
    tls_client.set(keys.current_attempt(spec.job_id), 2)
    result = subprocess.run([SLIPWAY, "worker", "--burst", "--count", "2"],
                            env=run_env(tls_redis, tmp_path, tls_redis.url()),
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    job = RQJob.fetch(keys.rq_job_id(spec.job_id, spec.attempt), connection=tls_client,
                      serializer=keys.RQ_SERIALIZER)
    assert job.return_value() == "refused"


def test_a_wrong_ca_is_a_clear_error_without_the_password(
    tls_redis: TlsRedis, tmp_path: Path
) -> None:
    wrong = tls_redis.url(ca=tls_redis.wrong_ca)
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        connect(wrong, socket_connect_timeout=2).ping()
    result = subprocess.run([SLIPWAY, "worker", "--burst"],
                            env=run_env(tls_redis, tmp_path, wrong),
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert f"Error: Redis at rediss://:***@127.0.0.1:{tls_redis.port}/0" in result.stderr
    assert "certificate verify failed" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


@pytest.mark.parametrize(("url", "expected"), [
    (f"rediss://:{PASSWORD}@127.0.0.1:6379/0?ssl_ca_cert=/etc/hostname",
     "redis-py has no option 'ssl_ca_cert' (for TLS: ssl_ca_certs, "),
    (f"redis://:{PASSWORD}@127.0.0.1:6379/0?ssl_ca_certs=/etc/hostname",
     "TLS options (ssl_ca_certs) need a rediss:// URL"),
    (f"rediss://:{PASSWORD}@127.0.0.1:6379/0?ssl_ca_certs=/no/such/ca.pem",
     "ssl_ca_certs=/no/such/ca.pem is not a file"),
    (f"rediss://:{PASSWORD}@127.0.0.1:6379/0?ssl_cert_reqs=always",
     "Invalid SSL Certificate Requirements Flag: always"),
    (f"http://:{PASSWORD}@127.0.0.1:6379/0", "must specify one of the following schemes"),
    (f"redis://:{PASSWORD}@127.0.0.1:port/0", "Port could not be cast to integer"),
])
def test_a_redis_url_slipway_cannot_use_is_named_without_its_password(
    url: str, expected: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(expected)) as error:
        load_settings({"SLIPWAY_REDIS_URL": url})
    message = str(error.value)
    assert message.startswith("SLIPWAY_REDIS_URL=")
    assert ":***@127.0.0.1" in message
    assert PASSWORD not in message
