"""A one-second cache of the answers that are the same for everyone: the badges.

A README's badge is fetched by every visitor's browser and by image proxies, each time
revalidating it (``Cache-Control: no-cache``). Answered by the app, each fetch costs two
queries and a trip through Flask. This WSGI middleware keeps each badge's full answer
(status, headers and body as the app made them) for :data:`TTL_SECONDS`, per web process,
and answers from it: the full badge, or a ``304`` when ``If-None-Match`` names its ETag,
with the headers the app would have sent. A badge is therefore at most that late after a
build ends. Only ``200`` answers without a cookie are kept, by scheme, host, path, query
and accepted encodings (an encoded answer differs).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache
from werkzeug.http import parse_etags, remove_entity_headers, unquote_etag

#: How long an answer is kept: how late a badge may be after its build ends.
TTL_SECONDS = 1.0
#: Answers kept at most per process (one per badge URL and encoding asked for).
MAX_ANSWERS = 10_000
#: The paths whose answers are the same for everyone who asks.
CACHED_PATHS = re.compile(r"/[^/]+/[^/]+/badge\.svg")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass(frozen=True)
class _Answer:
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    etag: str | None
    #: The headers of the ``304`` that answers a request naming ``etag``.
    not_modified_headers: list[tuple[str, str]]


class ResponseCache:
    """Wraps a WSGI app; answers :data:`CACHED_PATHS` from a cache of its own answers."""

    def __init__(self, app: WsgiApp, ttl: float = TTL_SECONDS) -> None:
        self.app = app
        self._answers: TTLCache = TTLCache(maxsize=MAX_ANSWERS, ttl=ttl)
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET" \
                or not CACHED_PATHS.fullmatch(environ.get("PATH_INFO", "")):
            return self.app(environ, start_response)
        key = (environ.get("wsgi.url_scheme"), environ.get("HTTP_HOST"),
               environ.get("PATH_INFO"), environ.get("QUERY_STRING"),
               environ.get("HTTP_ACCEPT_ENCODING"))
        with self._lock:
            answer = self._answers.get(key)
        if answer is None:
            answer = self._ask(environ)
            if answer.status.startswith("200 ") and not any(
                    name.lower() == "set-cookie" for name, _value in answer.headers):
                with self._lock:
                    self._answers[key] = answer
        return self._send(answer, environ, start_response)

    def _ask(self, environ: dict[str, Any]) -> _Answer:
        """The app's full answer to the request, asked without its conditions (the answer
        kept must be the whole one; :meth:`_send` applies them)."""
        unconditional = {name: value for name, value in environ.items()
                         if name not in ("HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE")}
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            started[:] = [status, headers]
            return lambda _data: None

        chunks = self.app(unconditional, start_response)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        status, headers = started
        etag = next((value for name, value in headers if name.lower() == "etag"), None)
        not_modified = list(headers)
        remove_entity_headers(not_modified)
        return _Answer(status, list(headers), body, etag, not_modified)

    @staticmethod
    def _send(answer: _Answer, environ: dict[str, Any], start_response: StartResponse
              ) -> Iterable[bytes]:
        asked = environ.get("HTTP_IF_NONE_MATCH")
        if asked and answer.etag and answer.status.startswith("200 ") and (
                asked == answer.etag  # as a client sends it back, most often
                or parse_etags(asked).contains_weak(unquote_etag(answer.etag)[0])):
            start_response("304 NOT MODIFIED", list(answer.not_modified_headers))
            return []
        start_response(answer.status, list(answer.headers))
        return [answer.body]
