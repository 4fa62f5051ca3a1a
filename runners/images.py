"""Slipway's build images, made from Debian packages when no registry has them.

A runner needs its build images in the local Docker engine. They are pulled when
a registry serves them; where none is reachable, :func:`ensure_image` builds the
image itself: ``debootstrap`` installs Debian bookworm plus the image's packages
into a directory, which is then imported as a single-layer image. That needs
root and a Debian mirror, nothing else.

Environment:
    SLIPWAY_DEBIAN_MIRROR: the Debian mirror ``debootstrap`` downloads from (for
        example a local caching proxy); unset means debootstrap's own default.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import docker
from docker.utils import parse_repository_tag

#: Image name -> the Debian packages installed on top of a minimal bookworm.
#: Bookworm's python3 is Python 3.11.
IMAGES: dict[str, list[str]] = {
    "slipway/python:3.11": [
        "python3", "python3-pip", "python3-venv", "python3-pytest", "git", "ca-certificates",
    ],
    # A service image: bookworm's Redis is 7.0.
    "slipway/redis:7": ["redis-server"],
}

#: What a service image runs when started; build images keep ``/bin/sh``.
COMMANDS: dict[str, list[str]] = {
    "slipway/redis:7": ["redis-server", "--protected-mode", "no", "--bind", "0.0.0.0 ::",
                        "--save", "", "--appendonly", "no"],
}

#: The Debian release images are built from.
SUITE = "bookworm"

#: Image settings ``docker import`` applies, as a Dockerfile would: an imported
#: root file system has no environment of its own.
IMAGE_CHANGES = [
    "ENV LANG=C.UTF-8",
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
]

#: How long a registry may take to start answering a pull before Slipway builds
#: the image instead. A firewalled registry would otherwise hang the pull for
#: minutes; a pull that has started is left to finish, however long it takes.
PULL_SECONDS = 20.0

# debootstrap prints a line per package and stage; the per-package ones drown
# the stages, which are what tell a person waiting how far the build is.
_PACKAGE_LINE = re.compile(
    r"I: ((Retrieving|Validating) \S+ \S+|(Extracting|Unpacking|Configuring) \S+\.\.\.)"
)
_MOUNT_ESCAPE = re.compile(r"\\([0-7]{3})")
_SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_CHUNK_BYTES = 1 << 20


class ImageBuildError(RuntimeError):
    """A build image is missing and could not be pulled or built; the message says why."""


def image_exists(client: docker.DockerClient, name: str) -> bool:
    """Whether the local engine has the image ``name`` (``repository:tag``)."""
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def ensure_image(
    client: docker.DockerClient,
    name: str,
    cache_dir: Path,
    mirror: str | None = None,
    log: Callable[[str], None] = print,
) -> str | None:
    """Make sure the engine has the image ``name``: present, pulled, or built.

    Building is the last resort, because it takes minutes; it works only for the
    images in :data:`IMAGES`.

    Args:
        client: the Docker engine to put the image into.
        name: ``repository:tag``.
        cache_dir: scratch space for the root file system while building
            (``$SLIPWAY_DATA_DIR/images``); emptied afterwards.
        mirror: the Debian mirror URL to build from; ``None`` means
            ``SLIPWAY_DEBIAN_MIRROR``, else debootstrap's default.
        log: called with a line of progress at each stage.

    Returns:
        ``None`` when the image was already there, else a sentence saying what was done.

    Raises:
        ImageBuildError: the image could not be pulled and cannot be built here.
    """
    if image_exists(client, name):
        return None
    error = _pull(client, name)
    if error is None:
        return f"pulled {name}"
    packages = IMAGES.get(name)
    if packages is None:
        raise ImageBuildError(
            f"Image {name} is not in the Docker engine and pulling it failed ({error}). "
            f"Slipway can build only {', '.join(sorted(IMAGES))}; pull or build {name} "
            "yourself, or name one of those."
        )
    log(f"pulling {name} failed ({error}); building it from Debian packages instead")
    build_image(client, name, packages, cache_dir, mirror, log)
    return f"built {name} from Debian {SUITE} packages"


def build_image(
    client: docker.DockerClient,
    name: str,
    packages: list[str],
    cache_dir: Path,
    mirror: str | None = None,
    log: Callable[[str], None] = print,
) -> None:
    """Build ``name`` from a minimal Debian plus ``packages`` and import it.

    Replaces an image of the same name. The root file system is built under
    ``cache_dir`` and removed afterwards, whether the build worked or not.

    Args:
        client: the Docker engine to import the image into.
        name: ``repository:tag``.
        packages: Debian packages to install on top of the minimal system.
        cache_dir: scratch space for the root file system.
        mirror: the Debian mirror URL; ``None`` means ``SLIPWAY_DEBIAN_MIRROR``,
            else debootstrap's default.
        log: called with a line of progress at each stage.

    Raises:
        ImageBuildError: debootstrap is missing or failed, or the engine refused the import.
    """
    if os.geteuid() != 0:
        raise ImageBuildError(
            f"Building {name} needs root (debootstrap installs packages into a root file "
            f"system): run `slipway images build {name}` as root, or pull the image from a "
            "registry you run."
        )
    debootstrap = _debootstrap()
    cache_dir.mkdir(parents=True, exist_ok=True)
    rootfs = (cache_dir / f"rootfs-{re.sub(r'[^A-Za-z0-9.]+', '-', name)}").resolve()
    _remove_rootfs(rootfs)
    command = [
        debootstrap, "--variant=minbase", f"--include={','.join(packages)}", SUITE, str(rootfs),
    ]
    mirror = mirror or os.environ.get("SLIPWAY_DEBIAN_MIRROR")
    if mirror:
        command.append(mirror)
    log(f"building {name}: debootstrap {SUITE} with {', '.join(packages)} (a few minutes)")
    try:
        _run_debootstrap(command, log)
        _clean_apt_caches(rootfs)
        log(f"importing {rootfs} as {name}")
        _import(client, rootfs, name)
    finally:
        _remove_rootfs(rootfs)


def _pull(client: docker.DockerClient, name: str) -> str | None:
    """Pull ``name``; return why it failed, or ``None`` when it worked.

    docker-py pulls without a timeout, so the pull runs in a daemon thread, which
    is abandoned when the registry has not answered within :data:`PULL_SECONDS`.
    """
    repository, tag = parse_repository_tag(name)
    answered = threading.Event()
    outcome: list[str | None] = []

    def pull() -> None:
        try:
            for event in client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
                answered.set()
                if "error" in event:
                    outcome.append(str(event["error"]))
                    return
            outcome.append(None)
        except (docker.errors.DockerException, OSError) as e:
            outcome.append(str(e))
        finally:
            answered.set()

    thread = threading.Thread(target=pull, name=f"pull {name}", daemon=True)
    thread.start()
    if not answered.wait(PULL_SECONDS):
        return f"no answer from the registry within {PULL_SECONDS:.0f} s"
    thread.join()
    return outcome[0]


def _debootstrap() -> str:
    """The debootstrap program, installed with apt-get when it is missing."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_DIRS])
    found = shutil.which("debootstrap", path=search)
    if found is not None:
        return found
    if shutil.which("apt-get", path=search) is None:
        raise ImageBuildError(
            "debootstrap is not installed; install it, then build the image again."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "debootstrap"]
    if subprocess.run(install, env=env, stdin=subprocess.DEVNULL, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, stdin=subprocess.DEVNULL, check=False)
        subprocess.run(install, env=env, stdin=subprocess.DEVNULL, check=False)
    found = shutil.which("debootstrap", path=search)
    if found is None:
        raise ImageBuildError(
            "debootstrap is not installed and `apt-get install -y debootstrap` failed (its "
            "output is above); install it, then build the image again."
        )
    return found


def _run_debootstrap(command: list[str], log: Callable[[str], None]) -> None:
    """Run debootstrap, passing its stage lines to ``log``; raise with its output's tail."""
    tail: deque[str] = deque(maxlen=20)
    with subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace",
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            tail.append(line)
            if not _PACKAGE_LINE.fullmatch(line):
                log(f"debootstrap: {line}")
    if process.returncode != 0:
        output = "\n".join(tail)
        raise ImageBuildError(
            f"debootstrap failed with exit code {process.returncode}. Check that the "
            f"mirror answers (set SLIPWAY_DEBIAN_MIRROR to another one if not). Its "
            f"output ends with:\n{output}"
        )


def _clean_apt_caches(rootfs: Path) -> None:
    """Delete downloaded packages and package lists: a build re-fetches lists anyway."""
    for package in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        package.unlink()
    for entry in (rootfs / "var/lib/apt/lists").iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _import(client: docker.DockerClient, rootfs: Path, name: str) -> None:
    """Stream a tar of ``rootfs`` into the engine as image ``name``."""
    repository, tag = parse_repository_tag(name)
    with tempfile.TemporaryFile() as tar_errors, subprocess.Popen(
        ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=tar_errors,
    ) as tar:
        assert tar.stdout is not None
        try:
            answer = client.api.import_image_from_stream(
                _chunks(tar.stdout), repository=repository, tag=tag or "latest",
                changes=[*IMAGE_CHANGES, f"CMD {json.dumps(COMMANDS.get(name, ['/bin/sh']))}"],
            )
        except (docker.errors.DockerException, OSError) as e:
            tar.kill()
            raise ImageBuildError(f"The Docker engine refused to import {name}: {e}") from e
        tar.stdout.close()
        code = tar.wait()
        tar_errors.seek(0)
        tar_output = tar_errors.read().decode(errors="replace").strip()
    if code != 0:
        if image_exists(client, name):
            client.images.remove(name, force=True)
        raise ImageBuildError(f"tar of {rootfs} failed with exit code {code}: {tar_output}")
    if "error" in answer.lower() or not image_exists(client, name):
        raise ImageBuildError(f"The Docker engine did not import {name}: {answer.strip()}")


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    """Read ``stream`` in large chunks, so the upload is sent chunked, not line by line."""
    while chunk := stream.read(_CHUNK_BYTES):
        yield chunk


def _remove_rootfs(rootfs: Path) -> None:
    """Delete a root file system, after unmounting what debootstrap left mounted.

    A killed debootstrap can leave the host's ``/proc``, ``/sys`` or ``/dev``
    mounted inside; deleting through such a mount would delete host files.
    """
    if not rootfs.exists():
        return
    for mount_point in _mounts_under(rootfs):
        subprocess.run(["umount", "--lazy", mount_point], check=False)
    left = _mounts_under(rootfs)
    if left:
        raise ImageBuildError(
            f"{rootfs} still has file systems mounted inside ({', '.join(left)}); "
            f"unmount them, then delete {rootfs}."
        )
    shutil.rmtree(rootfs)


def _mounts_under(folder: Path) -> list[str]:
    """Mount points inside ``folder``, deepest first so they can be unmounted in order."""
    prefix = f"{folder}/"
    points = []
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            # Spaces and tabs in mount points are octal escapes in this file.
            point = _MOUNT_ESCAPE.sub(lambda m: chr(int(m[1], 8)), line.split()[1])
            if point.startswith(prefix):
                points.append(point)
    return sorted(points, key=len, reverse=True)
