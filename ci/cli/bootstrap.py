"""Make the local services Slipway needs answer: Redis and a Docker engine.

``make run`` and ``make test`` call these through ``slipway bootstrap`` so that one
command brings a fresh Debian machine up. Each ``ensure_*`` function leaves a
service that already answers alone; otherwise it starts one (installing it from
the distribution's packages when it is missing and we are root) and records the
process in a pid file under ``run_dir``. :func:`stop_started` stops exactly those
processes, so ``slipway bootstrap --stop`` never touches a Redis or Docker engine
that someone else runs.

A Redis started here always asks for a password (the one ``slipway bootstrap``
generates into the data folder), since builds' logs, secrets-bearing job payloads
and the queue pass through it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import docker
import redis

from ci.redis_client import RedisUrlError, connect, without_password
from ci.settings import REDIS_PASSWORD_FILE, kept_secret

#: Redis hosts we may start a server for: anything else runs on another machine.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

#: The Docker socket used when ``DOCKER_HOST`` is unset; a local dockerd serves it.
DEFAULT_DOCKER_HOSTS = frozenset({"unix:///var/run/docker.sock", "unix:///run/docker.sock"})

#: How long a freshly started redis-server may take to answer PING.
REDIS_START_SECONDS = 10.0

#: How long a freshly started dockerd may take to answer; it sets up networking first.
DOCKER_START_SECONDS = 30.0

#: How long a stopped service may take to exit before it is killed; dockerd
#: gives its containers 15 seconds to stop.
STOP_SECONDS = 30.0

#: Pid file name -> the program that must own that pid. Checking the program means
#: a stale pid file (after a reboot, say) never makes us signal a stranger.
STARTED = {"redis.pid": "redis-server", "dockerd.pid": "dockerd"}

#: What :func:`_redis_state` finds wrong, worded to follow "it": nothing answers; it
#: answers clients without the password too; it refuses the URL's credentials.
DOWN, OPEN, REFUSED = "does not answer", "asked for no password", "refused the password"

# Debian keeps daemons in sbin, which a non-login root shell may lack on PATH.
_SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_APT_LISTS = Path("/var/lib/apt/lists")
_POLL_SECONDS = 0.1


class BootstrapError(RuntimeError):
    """A service Slipway needs does not answer and cannot be started here.

    The message says what was found and what to install or set instead.
    """


def ensure_redis(redis_url: str, run_dir: Path) -> str | None:
    """Make sure Redis answers at ``redis_url`` and asks for the URL's password, starting
    (or restarting) a local server if needed.

    Only a server on this machine can be started, and only with a password: the one in
    ``redis_url`` (``slipway bootstrap`` generates it into the data folder). A server this
    module started that asks for no password or another one (an older Slipway started it,
    or the password file was made anew) is restarted with the URL's; any other server is
    left alone, and the error says what is wrong with it. A started server listens on
    loopback only and keeps an append-only file in ``run_dir``, written to disk every
    second: runner events wait in Redis until the recorder applies them, so a restarted
    Redis must still hold them.

    Args:
        redis_url: the ``redis://`` URL Slipway will use.
        run_dir: where the pid file, log and append-only file of a started server go
            (``$SLIPWAY_DATA_DIR/run``).

    Returns:
        ``None`` when Redis already answered as it should, else a sentence saying what
        was done.

    Raises:
        BootstrapError: Redis cannot be used and cannot be started here; or the URL is
            malformed.
    """
    state = _redis_state(redis_url)
    if state is None:
        return None
    parts = urlsplit(redis_url)
    port = parts.port or 6379
    kind, problem = state
    unstartable = _unstartable(redis_url)
    if kind != DOWN:
        pid = _started_redis(run_dir, port) if parts.hostname in LOCAL_HOSTS else None
        if pid is None or unstartable:
            raise BootstrapError(problem)
        _terminate(pid)
        _start_redis(_which("redis-server") or "redis-server", redis_url, run_dir)
        return (f"restarted the redis-server bootstrap had started on port {port} (it {kind}); "
                "it now asks for the password of the Redis URL")
    if unstartable:
        raise BootstrapError(unstartable)
    done = []
    server = _which("redis-server")
    if server is None:
        _require_apt("redis-server", "Redis", "or set SLIPWAY_REDIS_URL to a Redis that answers")
        _apt_install("redis-server")
        state = _redis_state(redis_url)
        if state is None:
            return f"installed redis-server; its service answers on port {port}"
        if state[0] != DOWN:
            raise BootstrapError(f"installed redis-server, and its service: {state[1]}")
        done.append("installed redis-server")
        server = _which("redis-server")
        if server is None:
            raise BootstrapError(
                "apt-get installed redis-server but no redis-server program is on PATH; "
                "add its directory to PATH."
            )
    _start_redis(server, redis_url, run_dir)
    return "; ".join([*done, f"started redis-server on port {port}, with a password"])


def _unstartable(redis_url: str) -> str | None:
    """Why no Redis may be started for ``redis_url`` (one the URL could not reach, or one
    without a password); ``None`` when one may."""
    parts = urlsplit(redis_url)
    shown = without_password(redis_url)
    if parts.scheme != "redis" or parts.hostname not in LOCAL_HOSTS:
        return (f"Redis at {shown} does not answer. Start it, or set SLIPWAY_REDIS_URL to "
                "a Redis that answers (unset, it is the local Redis bootstrap starts).")
    if not parts.password or (parts.username or "default") != "default":
        return (f"Redis at {shown} does not answer, and Slipway starts a local redis-server "
                "only with a password and no user name. Unset "
                "SLIPWAY_REDIS_URL (bootstrap then generates a password into the data "
                "folder), or give one in it: redis://:PASSWORD@127.0.0.1:PORT/0.")
    return None


def keep_redis_password(data_dir: Path) -> str | None:
    """Generate the password of the local Redis into the data folder, once.

    Kept like the secret key (:func:`ci.settings.kept_secret`: owner-only, never
    replaced), so every Slipway process on this host given no ``SLIPWAY_REDIS_URL``
    puts it in its Redis URL.

    Returns:
        A sentence naming the file when it was made now, else ``None``.
    """
    path = data_dir / REDIS_PASSWORD_FILE
    if path.exists():
        return None
    kept_secret(data_dir, REDIS_PASSWORD_FILE, lambda: secrets.token_hex(32))
    return f"generated a password for the local Redis into {path}"


def ensure_docker(run_dir: Path) -> str | None:
    """Make sure a Docker engine answers, starting the local dockerd if needed.

    The engine is the one ``docker.from_env()`` finds (``DOCKER_HOST`` or the
    local socket). Only the local engine can be started, and only by root.

    Args:
        run_dir: where the pid file and log of a started dockerd go.

    Returns:
        ``None`` when the engine already answered, else a sentence saying what was done.

    Raises:
        BootstrapError: the engine does not answer and cannot be started here.
    """
    error = _docker_error()
    if error is None:
        return None
    host = os.environ.get("DOCKER_HOST")
    if host and host not in DEFAULT_DOCKER_HOSTS:
        raise BootstrapError(
            f"The Docker engine at DOCKER_HOST={host} does not answer ({error}). Start it, "
            "or unset DOCKER_HOST to use this machine's engine."
        )
    if os.geteuid() != 0:
        raise BootstrapError(
            f"The Docker engine does not answer ({error}). Start it as root (run "
            "`slipway bootstrap` as root, or `systemctl start docker`); if it runs, add "
            "this user to the docker group. Missing? `apt-get install docker.io`, or set "
            "DOCKER_HOST to an engine that answers."
        )
    done = []
    dockerd = _which("dockerd")
    if dockerd is None:
        _require_apt(
            "docker.io", "The Docker engine", "or set DOCKER_HOST to an engine that answers"
        )
        _apt_install("docker.io")
        if _docker_error() is None:
            return "installed docker.io; its service answers"
        done.append("installed docker.io")
        dockerd = _which("dockerd")
        if dockerd is None:
            raise BootstrapError(
                "apt-get installed docker.io but no dockerd program is on PATH; "
                "add its directory to PATH."
            )
    _start_dockerd(dockerd, run_dir)
    return "; ".join([*done, f"started dockerd (log: {run_dir / 'dockerd.log'})"])


def stop_started(run_dir: Path) -> list[str]:
    """Stop the services this module started, and only those.

    Each is asked to exit (SIGTERM), given :data:`STOP_SECONDS`, then killed.
    Stopping twice is harmless: pid files are removed, stale ones included.

    Args:
        run_dir: the directory the ``ensure_*`` functions were given.

    Returns:
        One sentence per stopped process; empty when nothing was running.
    """
    stopped = []
    for name, program in STARTED.items():
        pid_file = run_dir / name
        pid = _read_pid(pid_file)
        if pid is not None and _alive(pid) and _program(pid) == program:
            _terminate(pid)
            stopped.append(f"stopped {program} (pid {pid})")
        pid_file.unlink(missing_ok=True)
    return stopped


def _redis_state(redis_url: str) -> tuple[str, str] | None:
    """``None`` when Redis answers at ``redis_url`` and, if the URL has a password, refuses
    clients without it; else what is wrong (:data:`DOWN`, :data:`OPEN` or :data:`REFUSED`)
    and a sentence saying so and what to do."""
    shown = without_password(redis_url)
    try:
        if not _answers(redis_url):
            return DOWN, f"Redis at {shown} does not answer."
    except (redis.AuthenticationError, redis.ResponseError) as e:
        why = "refuses Slipway's password" if urlsplit(redis_url).password else (
            "asks for a password, and the URL has none")
        return REFUSED, (
            f"Redis at {shown} answers but {why} ({e}). Put the password it asks for in "
            "SLIPWAY_REDIS_URL (redis://:PASSWORD@host:port/0)."
        )
    if _open(redis_url):
        return OPEN, (
            f"Redis at {shown} answers clients without a password too, so anyone who "
            "reaches it may read builds' logs and enqueue jobs. Give it a password "
            "(requirepass) and put it in SLIPWAY_REDIS_URL, or stop it and run `slipway "
            "bootstrap` again to start one that has one."
        )
    return None


def _answers(redis_url: str) -> bool:
    """Whether Redis answers PING at ``redis_url``.

    Raises:
        redis.AuthenticationError, redis.ResponseError: it answers, but refuses these
            credentials.
        BootstrapError: the URL is malformed.
    """
    try:
        client = connect(redis_url, socket_connect_timeout=1, socket_timeout=2)
    except RedisUrlError as e:
        raise BootstrapError(f"SLIPWAY_REDIS_URL={e}") from None
    try:
        return bool(client.ping())
    except (redis.AuthenticationError, redis.ResponseError):
        raise
    except redis.RedisError:
        return False
    finally:
        client.close()


def _open(redis_url: str) -> bool:
    """Whether the Redis at ``redis_url``, a URL with a password, answers without it."""
    parts = urlsplit(redis_url)
    if not parts.password:
        return False
    try:
        return _answers(parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl())
    except (redis.AuthenticationError, redis.ResponseError):
        return False


def _started_redis(run_dir: Path, port: int) -> int | None:
    """The pid of the redis-server this module started on ``port``, if it still runs.

    redis-server shows its listening address as its process title
    (``redis-server 127.0.0.1:6379``), which tells its port.
    """
    pid = _read_pid(run_dir / "redis.pid")
    if pid is None or not _alive(pid) or _program(pid) != "redis-server":
        return None
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip()
    except OSError:
        return None
    return pid if title.endswith(f":{port}".encode()) else None


def _start_redis(server: str, redis_url: str, run_dir: Path) -> None:
    """Start a daemonized, loopback-only redis-server that asks for the URL's password and
    keeps an append-only file, and wait for PING.

    The configuration, password included, goes in on standard input (``redis-server -``):
    on the command line the password would show in ``ps``.
    """
    parts = urlsplit(redis_url)
    port = parts.port or 6379
    # Absolute, because redis-server changes into its dir before it opens its logfile.
    run_dir = run_dir.absolute()
    run_dir.mkdir(parents=True, exist_ok=True)
    log_file = run_dir / "redis.log"
    settings = {
        "port": str(port), "bind": "::1" if parts.hostname == "::1" else "127.0.0.1",
        "daemonize": "yes", "pidfile": str(run_dir / "redis.pid"), "logfile": str(log_file),
        "dir": str(run_dir), "save": "", "appendonly": "yes", "appendfsync": "everysec",
        "requirepass": unquote(parts.password or ""),
    }
    config = "".join(f"{name} {_quoted(value)}\n" for name, value in settings.items())
    result = subprocess.run(
        [server, "-"], input=config, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BootstrapError(
            f"redis-server exited with code {result.returncode}: "
            f"{_tail(result.stdout + result.stderr)}"
        )
    deadline = time.monotonic() + REDIS_START_SECONDS
    while not _answers(redis_url):
        if time.monotonic() > deadline:
            raise BootstrapError(
                f"redis-server did not answer on port {port} within {REDIS_START_SECONDS:.0f} s. "
                f"The end of {log_file}: {_tail(_read_text(log_file))}"
            )
        time.sleep(_POLL_SECONDS)


def _quoted(value: str) -> str:
    """``value`` as a double-quoted string of redis.conf: all but printable ASCII is
    hex-escaped, so no value (a password) can end its line and add a directive."""
    return '"' + "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\x{b:02x}"
                         for b in value.encode()) + '"'


def _docker_error() -> str | None:
    """Why the Docker engine does not answer, or ``None`` when it does."""
    try:
        client = docker.from_env(timeout=5)
    except docker.errors.DockerException as e:
        return str(e)
    try:
        client.ping()
        return None
    except (docker.errors.DockerException, OSError) as e:
        return str(e)
    finally:
        client.close()


def _start_dockerd(dockerd: str, run_dir: Path) -> None:
    """Start dockerd in its own session, detached from us, and wait until it answers.

    ``setsid --fork`` makes dockerd a child of init rather than of this process,
    so it outlives ``slipway bootstrap`` and is never left as our zombie.
    """
    run_dir = run_dir.absolute()
    run_dir.mkdir(parents=True, exist_ok=True)
    pid_file = run_dir / "dockerd.pid"
    log_file = run_dir / "dockerd.log"
    # A pid file left by a dockerd that died with its machine names a process long gone:
    # read before the new dockerd writes its own, it would count as "exited at once".
    pid_file.unlink(missing_ok=True)
    with log_file.open("ab") as log:
        subprocess.run(
            ["setsid", "--fork", dockerd, "--pidfile", str(pid_file)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, check=True,
        )
    deadline = time.monotonic() + DOCKER_START_SECONDS
    pid = None
    while (error := _docker_error()) is not None:
        pid = pid or _read_pid(pid_file)
        if pid is not None and not _alive(pid):
            raise BootstrapError(
                f"dockerd exited right after starting. The end of {log_file}: "
                f"{_tail(_read_text(log_file))}"
            )
        if time.monotonic() > deadline:
            raise BootstrapError(
                f"dockerd did not answer within {DOCKER_START_SECONDS:.0f} s ({error}). "
                f"The end of {log_file}: {_tail(_read_text(log_file))}"
            )
        time.sleep(_POLL_SECONDS)


def _require_apt(package: str, what: str, alternative: str) -> None:
    """Refuse to go on when ``package`` cannot be installed here, saying what to do."""
    if os.geteuid() != 0 or _which("apt-get") is None:
        raise BootstrapError(
            f"{what} is not installed. Install it (Debian: `apt-get install {package}`, "
            f"as root), {alternative}."
        )


def _apt_install(package: str) -> None:
    """Install a Debian package, refreshing the package lists once when that fails.

    apt-get's output goes to the terminal: an install can take a minute and the
    person waiting should see why.
    """
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", package]
    if not any(_APT_LISTS.glob("*_Packages*")):
        subprocess.run(["apt-get", "update"], env=env, stdin=subprocess.DEVNULL, check=False)
    if subprocess.run(install, env=env, stdin=subprocess.DEVNULL, check=False).returncode == 0:
        return
    subprocess.run(["apt-get", "update"], env=env, stdin=subprocess.DEVNULL, check=False)
    code = subprocess.run(install, env=env, stdin=subprocess.DEVNULL, check=False).returncode
    if code != 0:
        raise BootstrapError(
            f"`apt-get install -y {package}` failed with exit code {code} (its output is "
            f"above). Install {package} yourself, then run `slipway bootstrap` again."
        )


def _terminate(pid: int) -> None:
    """SIGTERM ``pid``, wait up to :data:`STOP_SECONDS`, then SIGKILL it."""
    for sig, seconds in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if _gone_within(pid, seconds):
            return


def _gone_within(pid: int, seconds: float) -> bool:
    """Wait until ``pid`` has exited; ``False`` when it still runs after ``seconds``."""
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_SECONDS)
    return True


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie has exited and only awaits its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The command name in parentheses may contain spaces; the state follows it.
    return stat.rpartition(")")[2].split()[0] != "Z"


def _program(pid: int) -> str | None:
    """The program name of ``pid`` as the kernel reports it."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def _read_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file``, or ``None`` when it is missing or garbled."""
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _which(program: str) -> str | None:
    """Find ``program`` on PATH or in the sbin directories daemons live in."""
    return shutil.which(program, path=os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_DIRS]))


def _read_text(path: Path) -> str:
    """A log file's text, or a note saying it is missing."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return f"({path} is missing)"


def _tail(text: str, lines: int = 15) -> str:
    """The last lines of a program's output, enough to see why it failed."""
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"
