"""Runner settings, from environment variables (each documented in the README)."""

from __future__ import annotations

import hashlib
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

#: The values of ``SLIPWAY_JOB_NETWORK``.
JOB_NETWORKS = ("internet", "isolated")

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt])(?:i?b)?", re.IGNORECASE)
_SIZE_UNITS = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}


@dataclass(frozen=True)
class RunnerSettings:
    """Where a runner keeps its caches and how it reaches its peers.

    Attributes:
        redis_url: the Redis the server enqueues into (``SLIPWAY_REDIS_URL``; by default
            the local one, with the password ``slipway bootstrap`` keeps in the data folder).
        work_dir: mirror cache and job workspaces (``SLIPWAY_RUNNER_DIR``,
            default ``$SLIPWAY_DATA_DIR/runner``).
        ca_bundle: a CA bundle on this host to mount into build containers, for
            networks that intercept TLS (``SLIPWAY_CA_BUNDLE``); None for none.
        name: how this runner is named in the build's records (``SLIPWAY_RUNNER_NAME``,
            default the host name).
        encryption_key: opens the secrets jobs carry: ``SLIPWAY_ENCRYPTION_KEY``, or on
            the server's own host the key in its data folder; None when neither.
        cache_limit_bytes: the build cache's size on this runner
            (``SLIPWAY_RUNNER_CACHE_MB``, default 5120); least recently used entries go first.
        job_network: ``internet`` (a job's network has a route out) or ``isolated`` (none);
            either way it reaches neither other jobs nor this host (``SLIPWAY_JOB_NETWORK``).
        artifact_limit_bytes: how much one job may keep of the files its pipeline names
            (``artifacts:``), in all (``SLIPWAY_ARTIFACT_LIMIT``, a size such as ``100m``
            or ``1g``; default 100 MiB).
        spare_containers: whether each runner process starts a container ahead for its
            next job (``SLIPWAY_SPARE_CONTAINERS``, ``1`` by default, ``0`` for none):
            a job then waits about half a second less for its first step, and each idle
            runner process keeps one idle container running (:mod:`runners.spare`).
    """

    redis_url: str
    work_dir: Path
    ca_bundle: Path | None
    name: str
    cache_limit_bytes: int = 5 * 1024 ** 3
    encryption_key: bytes | None = None
    job_network: str = "internet"
    artifact_limit_bytes: int = 100 * 1024 ** 2
    spare_containers: bool = True

    @property
    def internet(self) -> bool:
        """Whether a job's network has a route out."""
        return self.job_network == "internet"

    @property
    def instance(self) -> str:
        """Names the installation this runner serves: runners sharing a Redis share it."""
        return hashlib.sha256(self.redis_url.encode()).hexdigest()[:12]


def load_runner_settings(env: Mapping[str, str] | None = None) -> RunnerSettings:
    env = os.environ if env is None else env
    data_dir = Path(env.get("SLIPWAY_DATA_DIR") or "var").resolve()
    ca_bundle = env.get("SLIPWAY_CA_BUNDLE")
    if ca_bundle and not Path(ca_bundle).is_file():
        raise ValueError(f"SLIPWAY_CA_BUNDLE={ca_bundle!r} is not a file; give the path "
                         "of a PEM bundle, e.g. /etc/ssl/certs/ca-certificates.crt")
    return RunnerSettings(
        redis_url=env.get("SLIPWAY_REDIS_URL") or _local_redis_url(data_dir),
        work_dir=Path(env.get("SLIPWAY_RUNNER_DIR") or data_dir / "runner").resolve(),
        ca_bundle=Path(ca_bundle) if ca_bundle else None,
        name=env.get("SLIPWAY_RUNNER_NAME") or socket.gethostname(),
        cache_limit_bytes=_megabytes(env, "SLIPWAY_RUNNER_CACHE_MB", 5120) * 1024 * 1024,
        encryption_key=_encryption_key(env, data_dir),
        job_network=_job_network(env),
        artifact_limit_bytes=_size(env, "SLIPWAY_ARTIFACT_LIMIT",
                                   RunnerSettings.artifact_limit_bytes),
        spare_containers=_on_or_off(env, "SLIPWAY_SPARE_CONTAINERS", True),
    )


def _job_network(env: Mapping[str, str]) -> str:
    mode = env.get("SLIPWAY_JOB_NETWORK") or "internet"
    if mode not in JOB_NETWORKS:
        raise ValueError(f"SLIPWAY_JOB_NETWORK={mode!r} is neither {' nor '.join(JOB_NETWORKS)}: "
                         "`internet` lets builds reach the internet, `isolated` reaches nothing "
                         "outside the job")
    return mode


def _local_redis_url(data_dir: Path) -> str:
    """The Redis ``slipway bootstrap`` starts on this host, with the password it keeps in the
    data folder once it has made one (the server's settings read the same file)."""
    stored = data_dir / "redis_password"
    if not stored.is_file():
        return "redis://127.0.0.1:6379/0"
    return f"redis://:{stored.read_text().strip()}@127.0.0.1:6379/0"


def _encryption_key(env: Mapping[str, str], data_dir: Path) -> bytes | None:
    if env.get("SLIPWAY_ENCRYPTION_KEY"):
        return env["SLIPWAY_ENCRYPTION_KEY"].encode()
    stored = data_dir / "encryption_key"
    return stored.read_bytes().strip() if stored.is_file() else None


def _on_or_off(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if raw not in ("0", "1"):
        raise ValueError(f"{name}={raw!r} is neither 1 (on) nor 0 (off)")
    return raw == "1"


def _megabytes(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name) or str(default)
    if not raw.isdigit() or int(raw) <= 0:
        raise ValueError(f"{name}={raw!r} is not a positive whole number of MiB")
    return int(raw)


def _size(env: Mapping[str, str], name: str, default: int) -> int:
    """A size written with its unit (``100m``, ``1.5g``, ``512KiB``), in bytes."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    match = _SIZE.fullmatch(raw)
    if not match:
        raise ValueError(f"{name}={raw!r} is not a size; write a number and a unit, "
                         "k, m, g or t, e.g. 100m or 1g")
    size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    if size <= 0:
        raise ValueError(f"{name}={raw!r} must be more than zero, e.g. 100m")
    return size
