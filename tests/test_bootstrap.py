"""The local services and build images that ``slipway bootstrap`` brings up.

Everything runs for real: a redis-server is started and stopped, images are
looked up (and, when asked for, built) in the local Docker engine.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import redis

from ci.cli.bootstrap import BootstrapError, ensure_redis, stop_started
from runners.images import IMAGES, ensure_image, image_exists
from tests.conftest import free_port, wait_for

DEFAULT_IMAGE = "slipway/python:3.11"

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
    url = f"redis://127.0.0.1:{port}/0"
    try:
        assert ensure_redis(url, tmp_path) == f"started redis-server on port {port}"
        assert answers(url)
        assert ensure_redis(url, tmp_path) is None
    finally:
        stopped = stop_started(tmp_path)
    assert len(stopped) == 1
    assert stopped[0].startswith("stopped redis-server (pid ")
    wait_for(lambda: not answers(url), timeout=10)
    assert not (tmp_path / "redis.pid").exists()
    assert stop_started(tmp_path) == []


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


def test_ensure_redis_keeps_the_password_out_of_its_message(tmp_path: Path) -> None:
    expected = "only starts a local redis-server without a password"
    with pytest.raises(BootstrapError, match=expected) as error:
        ensure_redis(f"redis://:hunter2@127.0.0.1:{free_port()}/0", tmp_path)
    assert "hunter2" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


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
