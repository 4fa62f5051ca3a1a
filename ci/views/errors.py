"""Error answers: JSON for the API and webhooks, a plain page for people. Never a traceback."""

from __future__ import annotations

from flask import Flask, render_template, request
from werkzeug.exceptions import HTTPException

from ci.pipeline.redact import without_credentials

JSON_PREFIXES = ("/api/", "/hooks/")


def json_error(status: int, message: str, code: str):
    return {"error": {"code": code, "message": message}}, status


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        # A store or git error may quote a clone URL: never with its credentials.
        message = without_credentials(exc.description or exc.name)
        if exc.code == 413:
            message = f"request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
        # Keep what the client needs to react: Retry-After, WWW-Authenticate, Allow.
        headers = [(key, value) for key, value in exc.get_headers()
                   if key.lower() != "content-type"]
        if request.path.startswith(JSON_PREFIXES):
            body, status = json_error(exc.code or 500, message, code)
            return body, status, headers
        return render_template("error.html", status=exc.code, title=exc.name,
                               message=message), exc.code, headers
