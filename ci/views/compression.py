"""Compressed answers: pages, JSON, text, stylesheets, scripts and badges, with Flask-Compress.

A finished build page of 5,000 log lines is 554 KB of HTML and 33 KB gzipped. Flask-Compress
picks the encoding from ``Accept-Encoding``, adds ``Vary: Accept-Encoding`` to every answer,
gives a compressed answer's strong ETag its encoding (``"abc:gzip"``) and answers
``If-None-Match`` with 304 again after compressing.

Streamed answers are never compressed: a compressor keeps output back until it has enough
to work on, which would hold back the lines of a live log (``text/event-stream``, not in
:data:`MIMETYPES` either). Static files are streamed from disk by Flask, so the few KB of
stylesheet and script are read into memory to be compressed like a page.
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask_compress import Compress

MIMETYPES = ("text/html", "application/json", "text/plain", "text/css", "text/javascript",
             "application/javascript", "image/svg+xml")
#: Below about one network packet, compressing saves no round trip and costs time on every
#: small answer, such as the webhook's JSON.
MIN_SIZE = 1400


def init_app(app: Flask) -> None:
    app.config.update(COMPRESS_MIMETYPES=list(MIMETYPES), COMPRESS_MIN_SIZE=MIN_SIZE,
                      COMPRESS_STREAMS=False)
    Compress(app)
    # Registered after Flask-Compress, so it runs before it (Flask runs them in reverse).
    app.after_request(read_static_file)


def read_static_file(response: Response) -> Response:
    """A static stylesheet or script read whole, so that Flask-Compress, which leaves
    streamed answers alone, compresses it. Only full answers: a 304 has no body and a
    206 (a range) must stay the bytes asked for."""
    if (request.endpoint == "static" and response.status_code == 200
            and response.mimetype in MIMETYPES and response.is_streamed):
        response.direct_passthrough = False
        response.make_sequence()
    return response
