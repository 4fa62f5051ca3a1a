"""What every request is held to and every answer carries: the body limit for chunked
bodies, and the headers that keep pages from being framed, sniffed or scripted."""

from __future__ import annotations

import io
from typing import IO

from flask import Flask, Response, abort, current_app, request

#: Scripts and styles come from ``/static`` only; the pages have no inline script. Log
#: lines keep their ``#rrggbb`` terminal colours as ``style`` attributes
#: (``ci.logs.ansi``), which ``style-src-attr`` allows without allowing ``<style>``.
#: ``frame-ancestors`` keeps the Cancel and Restart buttons from being clickjacked.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'", "script-src 'self'", "style-src 'self'",
    "style-src-attr 'unsafe-inline'", "object-src 'none'", "base-uri 'none'",
    "form-action 'self'", "frame-ancestors 'none'",
))
#: Badges are embedded with ``<img>``, which none of these prevent. No page needs a camera,
#: a microphone or the user's location, so no script (or frame) may ask for them; a window
#: opened from another site gets no handle on a Slipway page, nor a Slipway page on it.
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def init_app(app: Flask) -> None:
    app.before_request(limit_chunked_body)
    app.after_request(add_security_headers)


def add_security_headers(response: Response) -> Response:
    """The headers of :data:`HEADERS`, unless a view chose its own.

    One pass over the response's headers rather than a lookup per header: this runs on
    every webhook, where a ``setdefault`` call per header cost 1–2% of the rate.
    """
    headers = response.headers
    present = {name.lower() for name, _ in headers.items()}
    headers.extend([(name, value) for name, value in HEADERS.items()
                    if name.lower() not in present])
    return response


def limit_chunked_body() -> None:
    """Answer 413 to a chunked body over ``MAX_CONTENT_LENGTH``, as to one with a length.

    Werkzeug stops reading a body that has no ``Content-Length`` at the limit and hands
    on what it read, so an over-long chunked webhook arrived cut short and was answered
    400 (malformed JSON). Forges send a ``Content-Length``; the rare chunked body is read
    here, one byte past the limit at most, and handed on whole.
    """
    environ = request.environ
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if not chunked or "wsgi.input_terminated" not in environ:
        return  # without a server that ends the stream, werkzeug reads no such body
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    body = _read_at_most(environ["wsgi.input"], limit + 1)
    if len(body) > limit:
        abort(413)
    environ["wsgi.input"] = io.BytesIO(body)


def _read_at_most(stream: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes of ``stream``: servers' chunked readers may return less per read."""
    parts: list[bytes] = []
    left = size
    while left > 0 and (part := stream.read(left)):
        parts.append(part)
        left -= len(part)
    return b"".join(parts)
