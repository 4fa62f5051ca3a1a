"""The local services and build images that ``slipway bootstrap`` brings up.

Everything runs for real: a redis-server is started (with a password) and stopped, images are
looked up (and, when asked for, built) in the local Docker engine.
"""

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import docker
import pytest
import redis

from ci.cli.bootstrap import (
    BootstrapError,
    ensure_redis,
    keep_redis_password,
    stop_started,
)
from ci.settings import load_settings
from runners.images import IMAGES, ensure_image, image_exists
from runners.settings import load_runner_settings
from tests.conftest import SLIPWAY, free_port, wait_for

DEFAULT_IMAGE = "slipway/python:3.11"
PASSWORD = "hunter2-correct-horse"

def refuses_strangers(port: int) -> bool:
    """Whether the Redis on ``port`` refuses a client that gives no password."""
    client = redis.Redis(port=port, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.AuthenticationError:
        return True
    finally:
        client.close()
    return False


def answers(url: str) -> bool:
    """Whether a Redis answers PING at ``url``."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


@pytest.fixture
def engine() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


def test_ensure_redis_leaves_an_answering_redis_alone(redis_url: str, tmp_path: Path) -> None:
    assert ensure_redis(redis_url, tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_ensure_redis_starts_a_local_server_that_stop_started_stops(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    try:
        started = ensure_redis(url, tmp_path)
        assert started == f"started redis-server on port {port}, with a password"
        assert answers(url)
        assert refuses_strangers(port)
        assert ensure_redis(url, tmp_path) is None
        # The password went in on standard input: `ps` shows no trace of it.
        cmdline = Path(f"/proc/{(tmp_path / 'redis.pid').read_text().strip()}/cmdline")
        assert PASSWORD.encode() not in cmdline.read_bytes()
    finally:
        stopped = stop_started(tmp_path)
    assert len(stopped) == 1
    assert stopped[0].startswith("stopped redis-server (pid ")
    wait_for(lambda: not answers(url), timeout=10)
    assert not (tmp_path / "redis.pid").exists()
    assert stop_started(tmp_path) == []


def test_a_started_redis_keeps_what_it_holds_across_a_restart(tmp_path: Path) -> None:
    # Runner events wait in Redis for the recorder: a restart must not lose them.
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    try:
        ensure_redis(url, tmp_path)
        client = redis.Redis.from_url(url)
        client.xadd("slipway:events", {"kind": "job_started"})
        client.close()
        assert stop_started(tmp_path)
        ensure_redis(url, tmp_path)
        client = redis.Redis.from_url(url)
        assert client.xlen("slipway:events") == 1
        client.close()
    finally:
        stop_started(tmp_path)
    assert (tmp_path / "appendonlydir").is_dir()


def test_ensure_redis_restarts_its_own_redis_that_asks_for_no_password(tmp_path: Path) -> None:
    # What an older `slipway bootstrap` left running.
    port = free_port()
    subprocess.run([shutil.which("redis-server") or "/usr/sbin/redis-server", "--port", str(port),
                    "--bind", "127.0.0.1", "--daemonize", "yes", "--save", "", "--dir",
                    str(tmp_path), "--pidfile", str(tmp_path / "redis.pid")], check=True,
                   stdout=subprocess.DEVNULL)
    old = wait_for(lambda: answers(f"redis://127.0.0.1:{port}/0") and
                   (tmp_path / "redis.pid").read_text().strip(), timeout=10)
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    try:
        assert ensure_redis(url, tmp_path) == (
            f"restarted the redis-server bootstrap had started on port {port} (it asked for "
            "no password); it now asks for the password of the Redis URL")
        assert (tmp_path / "redis.pid").read_text().strip() != old
        assert answers(url)
        assert refuses_strangers(port)
        # A new password (its file removed and made anew) restarts it again.
        other = f"redis://:other-{PASSWORD}@127.0.0.1:{port}/0"
        assert "(it refused the password)" in ensure_redis(other, tmp_path)
        assert answers(other)
    finally:
        stop_started(tmp_path)


def test_ensure_redis_leaves_a_redis_without_a_password_it_did_not_start(
    tmp_path: Path,
) -> None:
    port = free_port()
    stranger = subprocess.Popen(
        [shutil.which("redis-server") or "/usr/sbin/redis-server", "--port", str(port),
         "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: answers(f"redis://127.0.0.1:{port}/0"), timeout=10)
        with pytest.raises(BootstrapError, match="answers clients without a password too") as error:
            ensure_redis(f"redis://:{PASSWORD}@127.0.0.1:{port}/0", tmp_path)
        assert PASSWORD not in str(error.value)
        assert stranger.poll() is None
        # Asked for by name, without a password, it is used as it is.
        assert ensure_redis(f"redis://127.0.0.1:{port}/0", tmp_path) is None
    finally:
        stranger.terminate()
        stranger.wait(timeout=10)


def test_stop_started_never_signals_a_process_it_did_not_start(tmp_path: Path) -> None:
    # A stale pid file whose pid now belongs to another program, here this test.
    (tmp_path / "redis.pid").write_text(f"{os.getpid()}\n")
    (tmp_path / "dockerd.pid").write_text(f"{os.getpid()}\n")
    assert stop_started(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_ensure_redis_names_the_setting_when_redis_is_on_another_host(tmp_path: Path) -> None:
    # 127.0.0.2 refuses at once, and is not a host Slipway would start a server for.
    with pytest.raises(BootstrapError, match="set SLIPWAY_REDIS_URL to a Redis that answers"):
        ensure_redis(f"redis://127.0.0.2:{free_port()}/0", tmp_path)


def test_ensure_redis_starts_no_redis_without_a_password(tmp_path: Path) -> None:
    with pytest.raises(BootstrapError, match="only with a password"):
        ensure_redis(f"redis://127.0.0.1:{free_port()}/0", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_ensure_redis_keeps_the_password_out_of_its_messages(
    redis_url: str, tmp_path: Path
) -> None:
    with pytest.raises(BootstrapError, match="set SLIPWAY_REDIS_URL") as down:
        ensure_redis(f"redis://:{PASSWORD}@127.0.0.2:{free_port()}/0", tmp_path)
    wrong = redis_url.replace(urlsplit(redis_url).password, PASSWORD)
    with pytest.raises(BootstrapError, match="refuses Slipway's password") as refused:
        ensure_redis(wrong, tmp_path)
    for error in (down, refused):
        assert PASSWORD not in str(error.value)
        assert ":***@127.0.0." in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_the_redis_password_is_made_once_owner_only_and_in_every_default_url(
    tmp_path: Path,
) -> None:
    made = keep_redis_password(tmp_path)
    path = tmp_path / "redis_password"
    assert made == f"generated a password for the local Redis into {path}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password = path.read_text()
    assert len(password) == 64
    assert keep_redis_password(tmp_path) is None
    assert path.read_text() == password
    env = {"SLIPWAY_DATA_DIR": str(tmp_path)}
    url = f"redis://:{password}@127.0.0.1:6379/0"
    assert load_settings(env).redis_url == url
    assert load_runner_settings(env).redis_url == url
    # Given SLIPWAY_REDIS_URL, processes use it as it is.
    given = {**env, "SLIPWAY_REDIS_URL": "redis://:elsewhere@10.0.0.5:6379/1"}
    assert load_settings(given).redis_url == given["SLIPWAY_REDIS_URL"]
    assert load_runner_settings(given).redis_url == given["SLIPWAY_REDIS_URL"]


def test_without_a_password_file_the_default_url_has_no_password(tmp_path: Path) -> None:
    env = {"SLIPWAY_DATA_DIR": str(tmp_path)}
    assert load_settings(env).redis_url == "redis://127.0.0.1:6379/0"
    assert load_runner_settings(env).redis_url == "redis://127.0.0.1:6379/0"


@pytest.mark.docker
def test_ensure_image_leaves_a_present_image_alone(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    assert ensure_image(engine, DEFAULT_IMAGE, tmp_path) is None
    assert image_exists(engine, DEFAULT_IMAGE)
    assert not image_exists(engine, "slipway/no-such-image:0")


@pytest.mark.docker
@pytest.mark.skipif(
    os.environ.get("SLIPWAY_TEST_IMAGE_BUILD") != "1",
    reason="builds an image from Debian packages for minutes; set SLIPWAY_TEST_IMAGE_BUILD=1",
)
def test_ensure_image_builds_an_image_no_registry_has(
    engine: docker.DockerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "slipway/python-test:tmp"
    monkeypatch.setitem(IMAGES, name, IMAGES[DEFAULT_IMAGE])
    progress: list[str] = []
    try:
        assert ensure_image(engine, name, tmp_path, log=progress.append) == (
            f"built {name} from Debian bookworm packages"
        )
        output = engine.containers.run(
            name, ["sh", "-c", "python3 -m pytest --version && git --version && echo $LANG"],
            remove=True,
        )
    finally:
        if image_exists(engine, name):
            engine.images.remove(name, force=True)
    assert b"pytest 7." in output
    assert b"git version" in output
    assert output.endswith(b"C.UTF-8\n")
    assert "debootstrap: I: Base system installed successfully." in progress
    assert list(tmp_path.iterdir()) == []


@pytest.mark.docker
def test_bootstrap_without_redis_leaves_redis_alone(tmp_path: Path, docker_client) -> None:
    # The tests' own bootstrap: another checkout's Redis, with a password this data folder
    # does not know, may hold the port; Docker and the image are all the tests need.
    port = free_port()
    env = {**os.environ, "SLIPWAY_DATA_DIR": str(tmp_path / "data")}
    env["SLIPWAY_REDIS_URL"] = f"redis://:unknown@127.0.0.1:{port}/0"
    done = subprocess.run([SLIPWAY, "bootstrap", "--without-redis"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "redis" not in done.stdout.lower()
    assert not (tmp_path / "data" / "run" / "redis.pid").exists()
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_connect_timeout=1).ping()
