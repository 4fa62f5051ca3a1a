"""The Procfile's own web command (gunicorn with gevent workers) serving the app: live
log viewers hold connections, not workers, so many of them never stop webhooks."""

import os
import signal
import socket
import subprocess

import pytest
from redis import Redis

from ci.pipeline import keys
from ci.pipeline.logformat import OUT, LogEntry
from tests.bench import ROOT, procfile
from tests.conftest import SECRET, free_port, push_payload, sign, wait_for

#: More open log streams than the threaded server it replaced had threads (2 x 32).
VIEWERS = 80


@pytest.fixture
def web(app, registered, redis_url, tmp_path):
    """gunicorn started from the Procfile on the test's database and Redis."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "SLIPWAY_REDIS_URL": redis_url,
           "SLIPWAY_DATA_DIR": str(tmp_path / "data"), "SLIPWAY_BASE_URL": "http://ci.test"}
    log = (tmp_path / "web.log").open("wb")
    process = subprocess.Popen(["sh", "-c", procfile()["web"]], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(lambda: process.poll() is not None or _answers(port))
    assert process.poll() is None, (tmp_path / "web.log").read_text()
    yield port
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
    log.close()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"GET /api/repos HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            return connection.recv(12).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _request(port: int, method: str, path: str, body: bytes = b"",
             headers: dict[str, str] | None = None) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=20)
    lines = [f"{method} {path} HTTP/1.1", "Host: ci.test", f"Content-Length: {len(body)}",
             *(f"{name}: {value}" for name, value in (headers or {}).items())]
    connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return connection


def _read_until(connection: socket.socket, marker: bytes) -> bytes:
    received = b""
    while marker not in received:
        chunk = connection.recv(65536)
        assert chunk, f"the server closed the stream before {marker!r}: {received[-300:]!r}"
        received += chunk
    return received


def _webhook(port: int, message: str) -> bytes:
    body = push_payload("octo/project", "c" * 40, message=message)
    connection = _request(port, "POST", "/hooks/github", body, {
        "Content-Type": "application/json", "X-GitHub-Event": "push",
        "X-GitHub-Delivery": message, "X-Hub-Signature-256": sign(body, SECRET),
        "Connection": "close"})
    with connection:
        return _read_until(connection, b"}")


def test_many_live_log_viewers_leave_room_for_webhooks_and_all_get_new_lines(
        web, redis_client: Redis):
    assert b" 202 " in _webhook(web, "first")
    viewers = [_request(web, "GET", "/octo/project/builds/1/jobs/1/events")
               for _ in range(VIEWERS)]
    try:
        for viewer in viewers:
            assert b"retry: 2000" in _read_until(viewer, b"retry: 2000")

        answer = _webhook(web, "while watched")
        assert b" 202 " in answer and b'"number":2' in answer

        redis_client.xadd(keys.log_stream(1), LogEntry("", OUT, 0, "hello viewers\n").to_fields())
        for viewer in viewers:
            assert b"hello viewers" in _read_until(viewer, b"hello viewers")
    finally:
        for viewer in viewers:
            viewer.close()
