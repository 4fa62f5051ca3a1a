"""Redis clients for every Slipway process, made from one URL.

``SLIPWAY_REDIS_URL`` is ``redis://`` or, for Redis over TLS, ``rediss://``, and may carry
redis-py's connection options as query parameters (``ssl_ca_certs=/path/ca.pem``,
``ssl_cert_reqs=required``, ``socket_timeout=5``, …). The web app, the CLI, the recorder,
the reporter and the runner workers (their RQ queues and pubsub included) all make their
client with :func:`connect`, so TLS and those options apply to every one of them, and a URL
redis-py cannot use fails at once with a sentence saying what is wrong instead of a
``TypeError`` at the first command. No message here ever carries the URL's password.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from redis import Redis
from redis.connection import Connection, parse_url
from redis.exceptions import RedisError

#: Query parameters whose values are secrets, masked like the URL's password.
SECRET_OPTIONS = frozenset({"password", "ssl_password"})

#: The options a rediss:// URL most often needs, named when an unknown one is given.
TLS_OPTIONS = ("ssl_ca_certs", "ssl_cert_reqs", "ssl_certfile", "ssl_keyfile",
               "ssl_check_hostname")


class RedisUrlError(ValueError):
    """A Redis URL Slipway cannot use; the message shows the URL without its password."""


def connect(url: str, **options: Any) -> Redis:
    """A client for the Redis at ``url``; ``options`` (timeouts) yield to the URL's own.

    It connects lazily, at the first command.

    Raises:
        RedisUrlError: the URL is malformed or has options redis-py cannot use.
    """
    check_url(url)
    return Redis.from_url(url, **options)


def check_url(url: str) -> None:
    """Make sure redis-py can make connections from ``url``, without connecting.

    Raises:
        RedisUrlError: what is wrong, with the URL's password masked.
    """
    shown = without_password(url)
    try:
        options = parse_url(url)
    except ValueError as exc:
        raise RedisUrlError(f"{shown}: {exc}") from None
    tls = sorted(name for name in options if name.startswith("ssl_"))
    if tls and urlsplit(url).scheme != "rediss":
        raise RedisUrlError(f"{shown}: TLS options ({', '.join(tls)}) need a rediss:// URL")
    ca = options.get("ssl_ca_certs")
    if ca is not None and not Path(ca).is_file():
        raise RedisUrlError(f"{shown}: ssl_ca_certs={ca} is not a file; give the PEM bundle "
                            "of the CA that signed the Redis server's certificate")
    connection_class = options.pop("connection_class", Connection)
    try:
        connection_class(**options)  # checks every option; a connection opens on first use
    except TypeError as exc:
        unknown = str(exc).rpartition(" ")[2]
        raise RedisUrlError(f"{shown}: redis-py has no option {unknown} (for TLS: "
                            f"{', '.join(TLS_OPTIONS)})") from None
    except RedisError as exc:
        raise RedisUrlError(f"{shown}: {exc}") from None


def without_password(url: str) -> str:
    """``url`` with its password (and any secret query parameter) masked, for messages."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name in SECRET_OPTIONS for name, _ in query):
        masked = [(name, "***" if name in SECRET_OPTIONS else value) for name, value in query]
        parts = parts._replace(query=urlencode(masked, safe="/*"))
    return parts.geturl()
