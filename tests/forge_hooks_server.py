"""A forge's webhook API on a loopback port, for the tests of making a repository's webhook:
it keeps the hooks it is given, answers the list and create requests as the forge documents
them (FORGE_API.md section 6), and records every request for the test to check.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: The repository every forge here serves, as its API names it in paths.
PATHS = {
    "github": "/repos/acme/widgets/hooks",
    "gitlab": "/projects/acme%2Fwidgets/hooks",
    "gitea": "/repos/acme/widgets/hooks",
}
#: How each forge expects the token.
AUTH_HEADERS = {"github": "Authorization", "gitlab": "PRIVATE-TOKEN", "gitea": "Authorization"}
AUTH_PREFIXES = {"github": "Bearer ", "gitlab": "", "gitea": "token "}
PAGE_SIZE_ARGS = {"github": "per_page", "gitlab": "per_page", "gitea": "limit"}
GITHUB_DUPLICATE = {"message": "Validation Failed", "errors": [
    {"resource": "Hook", "code": "custom", "message": "Hook already exists on this repository"}],
    "documentation_url": "https://developer.github.com/v3/repos/hooks/#create-a-hook"}


@dataclass
class Recorded:
    method: str
    #: As sent, still percent-encoded.
    path: str
    query: dict[str, list[str]]
    #: Looked up without regard to case, as HTTP's header names are.
    headers: Message
    body: Any


@dataclass
class ForgeHooks:
    """One forge's hooks API; ``refusal`` (status, body) answers every request instead."""

    forge: str
    token: str
    hooks: list[dict[str, Any]] = field(default_factory=list)
    refusal: tuple[int, Any] | None = None
    #: Answers only the create request instead.
    create_refusal: tuple[int, Any] | None = None
    #: Lists no hooks, as just after another client made one.
    unlisted: bool = False
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def hook_url_of(self, hook: dict[str, Any]) -> str:
        return hook["url"] if self.forge == "gitlab" else hook["config"]["url"]

    def listing(self, query: dict[str, list[str]]) -> tuple[list[dict[str, Any]], dict]:
        """One page of hooks, with a ``Link`` header naming the next when there is one."""
        size = int(query.get(PAGE_SIZE_ARGS[self.forge], ["30"])[0])
        page = int(query.get("page", ["1"])[0])
        items = [] if self.unlisted else self.hooks[(page - 1) * size:page * size]
        headers = {}
        if page * size < len(self.hooks) and self.forge != "gitea":
            headers["Link"] = f'<{self.url}{PATHS[self.forge]}?page={page + 1}>; rel="next"'
        if self.forge == "gitea":
            headers["X-Total-Count"] = str(len(self.hooks))
        return items, headers

    def create(self, body: Any) -> tuple[int, Any]:
        """A new hook as the forge answers it; GitHub's 422 for a duplicate."""
        if self.create_refusal is not None:
            return self.create_refusal
        if not isinstance(body, dict):
            return 400, {"message": "Problems parsing JSON"}
        if self.forge == "github" and any(
                self.hook_url_of(hook) == body["config"]["url"] for hook in self.hooks):
            return 422, GITHUB_DUPLICATE
        self.hooks.append({**body, "id": len(self.hooks) + 1})
        made = json.loads(json.dumps(self.hooks[-1]))
        made.pop("token", None)  # secrets are never returned
        made.get("config", {}).pop("secret", None)
        return 201, made


@contextmanager
def serving(api: ForgeHooks) -> Iterator[ForgeHooks]:
    """Serve ``api`` on a loopback port (``api.url``) while in the block."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: Any, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            api.requests.append(Recorded(self.command, parts.path, parse_qs(parts.query),
                                         self.headers, body))
            if api.refusal is not None:
                return self._answer(*api.refusal)
            given = self.headers.get(AUTH_HEADERS[api.forge], "")
            if given != AUTH_PREFIXES[api.forge] + api.token:
                return self._answer(401, {"message": "Bad credentials"})
            if parts.path != PATHS[api.forge]:
                return self._answer(404, {"message": "Not Found"})
            if self.command == "GET":
                items, headers = api.listing(parse_qs(parts.query))
                return self._answer(200, items, headers)
            return self._answer(*api.create(body))

        do_GET = do_POST = _handle

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
