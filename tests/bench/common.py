"""What every section of the bench shares: its constants, errors, the repository it builds,
signed webhooks and small process helpers.

Kept free of Docker, Redis and Flask imports, so that ``tests.bench`` (which the tests
import for :data:`ROOT` and :func:`procfile`) stays light.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from tests.polling import wait_for
from tests.procfile import read_procfile

ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent
PUSH_FIXTURE = ROOT / "tests" / "fixtures" / "webhooks" / "github" / "push.branch.json"
REPORT = ROOT / "docs" / "benchmarks.md"
PUBLIC_BIND = "--bind 0.0.0.0:"
LOOPBACK_BIND = "--bind 127.0.0.1:"
WEB_APP = '"app:app"'

IMAGE = "slipway/python:3.11"
REPO = "bench/tiny"
SECRET = "bench-secret"

#: How long any one thing may take before the bench gives up with an error.
START_SECONDS = 60
BUILD_SECONDS = 180

TEST_FILE = "def test_arithmetic():\n    assert 1 + 1 == 2\n"
PYTEST_CONFIG = f"image: {IMAGE}\nsteps:\n  - python3 -m pytest -q\n"

T = TypeVar("T")


class BenchError(RuntimeError):
    """The bench could not take a measurement; the message says what went wrong."""


def free_port() -> int:
    """A loopback port nobody listens on now (ephemeral range, so never 8000)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate: Callable[[], T], seconds: float, what: str,
               interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy; a deadline, never a hang."""
    try:
        return wait_for(predicate, seconds, interval, what)
    except AssertionError as exc:
        raise BenchError(str(exc)) from None


def run(*command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command to completion; its stderr becomes the error when it fails."""
    done = subprocess.run([str(part) for part in command], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(map(str, command))} exited {done.returncode}: "
                         f"{(done.stderr or done.stdout).strip()}")
    return done.stdout.strip()


def load() -> float:
    """The machine's 1-minute load average (/proc/loadavg): the machine may be shared."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def sign(body: bytes) -> str:
    """GitHub's ``X-Hub-Signature-256`` over the exact bytes sent."""
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def push_webhook(sha: str, message: str, repo: str = REPO) -> tuple[bytes, dict[str, str]]:
    """A signed GitHub push of ``sha`` to ``repo``, from the recorded delivery."""
    payload = json.loads(PUSH_FIXTURE.read_bytes())
    payload["repository"]["full_name"] = repo
    payload["after"] = sha
    payload["head_commit"]["id"] = sha
    payload["head_commit"]["message"] = message
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body),
    }
    return body, headers


def epoch(iso: str | None) -> float:
    """Seconds since the epoch of an API timestamp (ISO 8601, UTC)."""
    if iso is None:
        raise BenchError("the build JSON lacks a timestamp the bench needs")
    return datetime.fromisoformat(iso).timestamp()


def procfile() -> dict[str, str]:
    """The Procfile's processes by name, with the web server bound to loopback only.

    The bench runs the Procfile's own command lines, so that what it measures is
    what ``make run`` deploys, including any process added later.
    """
    processes = read_procfile()
    for name in ("web", "recorder", "worker"):
        if name not in processes:
            raise BenchError(f"the Procfile has no {name!r} process")
    if PUBLIC_BIND not in processes["web"] or WEB_APP not in processes["web"]:
        raise BenchError(f"the Procfile's web command lacks {PUBLIC_BIND!r} or {WEB_APP}; "
                         "teach the bench how to bind it to loopback and swap its app")
    processes["web"] = processes["web"].replace(PUBLIC_BIND, LOOPBACK_BIND)
    return processes


class TinyRepo:
    """The repository that is built: one passing test and a ``.slipway.yml``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        self._git("init", "-q", "-b", "main")
        self._git("config", "user.email", "bench@example.com")
        self._git("config", "user.name", "Bench")
        self.commits = 0
        self.head = self.commit({"test_tiny.py": TEST_FILE, ".slipway.yml": PYTEST_CONFIG})

    def _git(self, *args: str) -> str:
        """Run git in the repository; its output."""
        return run("git", *args, cwd=self.path)

    def commit(self, files: dict[str, str] | None = None) -> str:
        """Commit ``files`` and a change nobody runs (so that every commit is new); the new
        HEAD."""
        self.commits += 1
        for name, text in {"CHANGES": f"change {self.commits}\n", **(files or {})}.items():
            (self.path / name).write_text(text)
        self._git("add", "-A")
        self._git("commit", "-q", "-m", f"change {self.commits}")
        self.head = self._git("rev-parse", "HEAD")
        return self.head


def environment(**settings: str) -> dict[str, str]:
    """This process's environment without inherited ``SLIPWAY_*`` settings (they would
    point a stack at someone else's database or Redis), plus ``settings``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SLIPWAY_")}
    env.update(settings)
    return env
