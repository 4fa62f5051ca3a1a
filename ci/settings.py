"""Server settings, read from environment variables at call time.

Every setting has a documented default (see the README's configuration table), so
``make run`` works with none set. Tests pass overrides to :func:`load_settings`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from ci.notifications.mail import parse_smtp_url
from ci.pipeline.config import parse_duration
from ci.pipeline.spec import DEFAULT_IMAGE, DEFAULT_LOG_LIMIT_BYTES, DEFAULT_TIMEOUT_SECONDS, Limits
from ci.redis_client import check_url

MIB = 1024 * 1024


class SettingsError(ValueError):
    """A setting has a value Slipway cannot use; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Everything the server side needs to know about its surroundings."""

    data_dir: Path
    database_url: str
    redis_url: str
    base_url: str
    port: int = 8000
    secret_key: str = ""
    max_webhook_bytes: int = 5 * MIB
    #: How many reverse proxies in front set ``X-Forwarded-*``; 0 trusts none of them.
    proxy_hops: int = 0
    default_image: str = DEFAULT_IMAGE
    job_timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    limits: Limits = field(default_factory=Limits)
    #: What a repository may ask for at most (``slipway repo limits``).
    max_limits: Limits = field(default_factory=lambda: Limits(memory="8g", cpus=4.0, pids=4096))
    #: How many jobs of one repository may run at once, at most (``slipway repo limits
    #: --max-jobs`` may set less); 0: no maximum.
    max_jobs_per_repo: int = 0
    log_limit_bytes: int = DEFAULT_LOG_LIMIT_BYTES
    builds_per_page: int = 25
    encryption_key: str = ""
    auto_cancel_push: bool = False
    auto_cancel_pull_requests: bool = True
    #: Required as ``Authorization: Bearer …`` by ``GET /metrics``; empty: it is open.
    metrics_token: str = ""
    #: Where notification mails go out (``smtp://``, ``smtps://``); empty: no mail.
    smtp_url: str = ""
    #: The mails' sender; empty: ``slipway@`` the host of ``base_url``.
    mail_from: str = ""
    #: How long a notification that could not be delivered waits before each next try.
    notify_retry_seconds: tuple[int, ...] = (10, 60, 300, 1800)
    #: Days after which a finished build's logs and artifacts are removed; 0: kept forever.
    keep_days: int = 90
    #: Days after which a finished build itself is deleted; 0: kept forever.
    keep_build_days: int = 0
    #: The newest builds of each branch, each pull request and of the tags, kept whole
    #: whatever their age.
    keep_builds: int = 10
    #: How often the recorders prune old builds (one of them at a time).
    prune_interval_seconds: int = 3600

    @property
    def log_dir(self) -> Path:
        """Where finished jobs' logs are archived."""
        return self.data_dir / "logs"

    @property
    def artifact_dir(self) -> Path:
        """Where the local artifact store keeps the files jobs kept (``ci.artifacts``)."""
        return self.data_dir / "artifacts"


#: Every default, written once: in the fields above.
_DEFAULTS = Settings(data_dir=Path("var"), database_url="", redis_url="", base_url="")


#: The file in the data folder holding the password of the Redis ``slipway bootstrap`` starts.
REDIS_PASSWORD_FILE = "redis_password"

#: Where the Redis ``slipway bootstrap`` starts listens.
LOCAL_REDIS = "127.0.0.1:6379/0"


def default_redis_url(data_dir: Path) -> str:
    """The Redis URL of a process given no ``SLIPWAY_REDIS_URL``: the local Redis, with the
    password ``slipway bootstrap`` generated into the data folder once it has."""
    path = data_dir / REDIS_PASSWORD_FILE
    if not path.exists():
        return f"redis://{LOCAL_REDIS}"
    return f"redis://:{_written(path)}@{LOCAL_REDIS}"


#: How long a process waits for another one, starting at the same moment, to write the
#: secret file it created.
KEPT_SECRET_WAIT_SECONDS = 5.0


def kept_secret(data_dir: Path, name: str, make: Callable[[], str]) -> str:
    """A per-installation secret kept in the file ``name`` of the data folder: made with
    ``make`` on first use, readable by its owner only, the same ever after (back it up
    with the database).

    Processes starting together (gunicorn's workers, the recorder) agree on one secret:
    the file is created only if it does not exist, owner-only from its first moment, and
    a process that finds it created reads what its creator wrote.

    Raises:
        SettingsError: the file stays empty (its creator died before writing it).
    """
    path = data_dir / name
    if path.exists():
        return _written(path)
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = make()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _written(path)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(secret)
    except BaseException:
        path.unlink()  # an empty file would stand for a secret nobody knows
        raise
    return secret.strip()


def _written(path: Path) -> str:
    """The secret in ``path``, once the process that created the file has written it."""
    deadline = time.monotonic() + KEPT_SECRET_WAIT_SECONDS
    while not (secret := path.read_text().strip()):
        if time.monotonic() > deadline:
            raise SettingsError(f"{path} is empty; unless a Slipway process is starting right "
                                "now, remove it and the next start makes a new one")
        time.sleep(0.01)
    return secret


def _redis_url(env: Mapping[str, str], data_dir: Path) -> str:
    url = env.get("SLIPWAY_REDIS_URL")
    if not url:
        return default_redis_url(data_dir)
    try:
        check_url(url)
    except ValueError as exc:
        raise SettingsError(f"SLIPWAY_REDIS_URL={exc}") from None
    return url


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r} must be greater than zero")
    return value


def _count(env: Mapping[str, str], name: str) -> int:
    raw = env.get(name) or "0"
    if not raw.isdigit():
        raise SettingsError(f"{name}={raw!r} is not a count; use 0 (no proxy), 1, 2, …")
    return int(raw)


def _maximum(env: Mapping[str, str], name: str) -> int:
    raw = (env.get(name) or "0").strip()
    if not (raw.isascii() and raw.isdigit()):
        raise SettingsError(f"{name}={raw!r} is not a whole number; use e.g. 4, or 0 for no "
                            "maximum")
    return int(raw)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r} must be greater than zero")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not a yes/no value; use true or false")


def _seconds(env: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    parts = [part.strip() for part in raw.split(",")]
    if not all(part.isdigit() and int(part) > 0 for part in parts):
        raise SettingsError(f"{name}={raw!r} is not a list of seconds; use e.g. 10,60,300,1800")
    return tuple(int(part) for part in parts)


def _days(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise SettingsError(f"{name}={raw!r} is not a number of days; use e.g. 30, or 0 to "
                            "keep forever")
    return int(raw)


def check_retention(keep_days: int, keep_build_days: int,
                    keep_days_source: str = "SLIPWAY_KEEP_DAYS") -> None:
    """Refuse to delete builds before their logs are due to go: a build is deleted with
    its logs, so ``keep_build_days`` (when set) is at least ``keep_days``.

    Args:
        keep_days_source: where ``keep_days`` came from, as the message names it.

    Raises:
        SettingsError: builds would go before their logs.
    """
    if not keep_build_days or (keep_days and keep_build_days >= keep_days):
        return
    problem = (f"SLIPWAY_KEEP_BUILD_DAYS={keep_build_days} deletes builds, and their logs "
               f"with them, after {keep_build_days} days, but {keep_days_source}={keep_days} "
               "keeps logs ")
    if not keep_days:
        raise SettingsError(problem + "forever; set SLIPWAY_KEEP_BUILD_DAYS to 0 (keep "
                            "builds forever) or the days to keep logs to at most "
                            f"{keep_build_days}")
    raise SettingsError(problem + f"for {keep_days} days; set SLIPWAY_KEEP_BUILD_DAYS to "
                        f"{keep_days} or more, or to 0 (keep builds forever)")


def _smtp_url(env: Mapping[str, str]) -> str:
    url = env.get("SLIPWAY_SMTP_URL") or ""
    if url:
        try:
            parse_smtp_url(url)
        except ValueError as exc:
            raise SettingsError(f"SLIPWAY_SMTP_URL: {exc}") from None
    return url


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from ``env`` (default: ``os.environ``) and overrides.

    Raises:
        SettingsError: a variable holds a value that cannot be used.
    """
    env = os.environ if env is None else env
    data_dir = Path(env.get("SLIPWAY_DATA_DIR") or "var").resolve()
    port = _int(env, "PORT", _DEFAULTS.port)
    timeout_raw = env.get("SLIPWAY_JOB_TIMEOUT")
    try:
        timeout = parse_duration(timeout_raw) if timeout_raw else _DEFAULTS.job_timeout_seconds
    except ValueError as exc:
        raise SettingsError(f"SLIPWAY_JOB_TIMEOUT={timeout_raw!r}: {exc}") from None
    limits, max_limits = _DEFAULTS.limits, _DEFAULTS.max_limits
    settings = Settings(
        data_dir=data_dir,
        database_url=env.get("SLIPWAY_DATABASE_URL") or f"sqlite:///{data_dir / 'slipway.db'}",
        redis_url=_redis_url(env, data_dir),
        base_url=(env.get("SLIPWAY_BASE_URL") or f"http://localhost:{port}").rstrip("/"),
        port=port,
        secret_key=env.get("SLIPWAY_SECRET_KEY", ""),
        max_webhook_bytes=_int(env, "SLIPWAY_MAX_WEBHOOK_BYTES", _DEFAULTS.max_webhook_bytes),
        proxy_hops=_count(env, "SLIPWAY_PROXY_HOPS"),
        default_image=env.get("SLIPWAY_DEFAULT_IMAGE") or _DEFAULTS.default_image,
        job_timeout_seconds=timeout,
        encryption_key=env.get("SLIPWAY_ENCRYPTION_KEY", ""),
        metrics_token=env.get("SLIPWAY_METRICS_TOKEN", ""),
        log_limit_bytes=_int(env, "SLIPWAY_JOB_LOG_LIMIT_MB",
                             _DEFAULTS.log_limit_bytes // MIB) * MIB,
        auto_cancel_push=_bool(env, "SLIPWAY_AUTO_CANCEL_PUSH", _DEFAULTS.auto_cancel_push),
        auto_cancel_pull_requests=_bool(env, "SLIPWAY_AUTO_CANCEL_PULL_REQUESTS",
                                        _DEFAULTS.auto_cancel_pull_requests),
        smtp_url=_smtp_url(env),
        mail_from=env.get("SLIPWAY_MAIL_FROM") or "",
        notify_retry_seconds=_seconds(env, "SLIPWAY_NOTIFY_RETRY_SECONDS",
                                      _DEFAULTS.notify_retry_seconds),
        keep_days=_days(env, "SLIPWAY_KEEP_DAYS", _DEFAULTS.keep_days),
        keep_build_days=_days(env, "SLIPWAY_KEEP_BUILD_DAYS", _DEFAULTS.keep_build_days),
        keep_builds=_int(env, "SLIPWAY_KEEP_BUILDS", _DEFAULTS.keep_builds),
        prune_interval_seconds=_int(env, "SLIPWAY_PRUNE_INTERVAL_SECONDS",
                                    _DEFAULTS.prune_interval_seconds),
        limits=Limits(
            memory=env.get("SLIPWAY_JOB_MEMORY") or limits.memory,
            cpus=_float(env, "SLIPWAY_JOB_CPUS", limits.cpus),
            pids=_int(env, "SLIPWAY_JOB_PIDS", limits.pids),
        ),
        max_limits=Limits(
            memory=env.get("SLIPWAY_MAX_JOB_MEMORY") or max_limits.memory,
            cpus=_float(env, "SLIPWAY_MAX_JOB_CPUS", max_limits.cpus),
            pids=_int(env, "SLIPWAY_MAX_JOB_PIDS", max_limits.pids),
        ),
        max_jobs_per_repo=_maximum(env, "SLIPWAY_MAX_JOBS_PER_REPO"),
    )
    settings = replace(settings, **overrides)
    check_retention(settings.keep_days, settings.keep_build_days)
    return settings
