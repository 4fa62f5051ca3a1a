"""The server floor's application: the least a WSGI app can do per request.

Served by the Procfile's own gunicorn line in place of ``app:app``, it shows what the web
server, its worker class and the loopback cost on their own; Slipway's figures are judged
as fractions of it. It reads the whole body (as a webhook handler must) and answers a
constant: 202 to a POST, a fixed SVG to anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="90" height="20">'
       b'<rect width="90" height="20" fill="#4c1"/></svg>')
ACCEPTED = b'{"accepted": true}'

StartResponse = Callable[[str, list[tuple[str, str]]], object]


def app(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    """Read the body, answer the constant."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    if environ["REQUEST_METHOD"] == "POST":
        start_response("202 Accepted", [("Content-Type", "application/json"),
                                        ("Content-Length", str(len(ACCEPTED)))])
        return [ACCEPTED]
    start_response("200 OK", [("Content-Type", "image/svg+xml"),
                              ("Content-Length", str(len(SVG))),
                              ("Cache-Control", "no-cache")])
    return [SVG]
