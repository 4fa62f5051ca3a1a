"""The badges' one-second cache: answers kept whole, 304s made from them, nothing kept
that is not the same for everyone, and the app's own headers on every answer."""

from __future__ import annotations

from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from ci.views.response_cache import ResponseCache
from tests.conftest import wait_for

BADGE = "/octo/project/badge.svg"


class CountingApp:
    """A WSGI app answering like the badge view, counting what it was asked."""

    def __init__(self) -> None:
        self.asked: list[dict[str, str | None]] = []
        self.state = "passing"
        self.status = 200
        self.cookie = False

    def __call__(self, environ, start_response):
        request = Request(environ)
        self.asked.append({"path": request.path,
                           "if_none_match": request.headers.get("If-None-Match")})
        response = Response(f"<svg>{self.state}</svg>", status=self.status,
                            mimetype="image/svg+xml")
        response.set_etag(self.state)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        if self.cookie:
            response.set_cookie("session", "abc")
        return response.make_conditional(request)(environ, start_response)


def test_a_badge_is_answered_from_the_cache_with_the_apps_headers_and_304s():
    app = CountingApp()
    client = Client(ResponseCache(app, ttl=60))
    first = client.get(BADGE)
    again = client.get(BADGE)
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.get_data() == again.get_data() == b"<svg>passing</svg>"
    assert dict(first.headers) == dict(again.headers)
    assert len(app.asked) == 1
    revalidated = client.get(BADGE, headers={"If-None-Match": first.headers["ETag"]})
    assert revalidated.status_code == 304
    assert revalidated.get_data() == b""
    assert revalidated.headers["ETag"] == first.headers["ETag"]
    assert revalidated.headers["Cache-Control"] == "no-cache"
    assert revalidated.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Type" not in revalidated.headers
    stale = client.get(BADGE, headers={"If-None-Match": '"failing"'})
    assert stale.status_code == 200 and stale.get_data() == b"<svg>passing</svg>"
    assert len(app.asked) == 1


def test_a_first_conditional_request_is_asked_whole_then_answered_304():
    app = CountingApp()
    client = Client(ResponseCache(app, ttl=60))
    answer = client.get(BADGE, headers={"If-None-Match": '"passing"'})
    assert answer.status_code == 304
    assert app.asked == [{"path": BADGE, "if_none_match": None}]
    assert client.get(BADGE).get_data() == b"<svg>passing</svg>"
    assert len(app.asked) == 1


def test_answers_are_kept_apart_by_query_and_encoding_and_expire():
    app = CountingApp()
    client = Client(ResponseCache(app, ttl=0.2))
    client.get(BADGE)
    client.get(f"{BADGE}?branch=dev")
    client.get(BADGE, headers={"Accept-Encoding": "gzip"})
    assert len(app.asked) == 3
    app.state = "failing"
    # Once the kept answer expires, the next request sees the new state.
    wait_for(lambda: b"failing" in client.get(BADGE).get_data(), timeout=10,
             what="the badge's new state")


def test_errors_cookies_and_other_paths_are_never_kept():
    app = CountingApp()
    client = Client(ResponseCache(app, ttl=60))
    app.status = 500
    client.get(BADGE)
    client.get(BADGE)
    app.status, app.cookie = 200, True
    with_cookie = client.get(BADGE)
    client.get(BADGE)
    assert "session=abc" in with_cookie.headers["Set-Cookie"]
    app.cookie = False
    client.get("/octo/project/builds")
    client.get("/octo/project/builds")
    client.post(BADGE)
    assert len(app.asked) == 7


def test_the_apps_badge_from_the_cache_has_every_header_the_app_sends(client, registered):
    first = client.get("/octo/project/badge.svg")
    again = client.get("/octo/project/badge.svg")
    assert first.status_code == again.status_code == 200
    assert dict(first.headers) == dict(again.headers)
    assert first.headers["Cache-Control"] == "no-cache"
    assert "Content-Security-Policy" in first.headers
    not_modified = client.get("/octo/project/badge.svg",
                              headers={"If-None-Match": first.headers["ETag"]})
    assert not_modified.status_code == 304
    assert not_modified.headers["ETag"] == first.headers["ETag"]
    assert "Content-Security-Policy" in not_modified.headers
