"""The lists of builds over HTTP: the repository page's filters, pages and duration chart,
the branches and pull requests views, the JSON API's filters, and the streams that keep
the lists live; on real webhooks, a real database and a real Redis."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import event, select

from ci import store
from ci.builds import changes
from ci.pipeline.status import Status
from ci.store.models import Build, utcnow
from ci.views import charts, list_events
from tests.conftest import (GITHUB, add_user, post_hook, push_payload, sse_events,
                            token_headers)

REPO = "/octo/project"


def push(client, branch: str = "main", message: str = "change", repo: str = "octo/project",
         sha: str = "a" * 40) -> int:
    answer = post_hook(client, push_payload(repo, sha, branch=branch, message=message))
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["build"]["number"]


def pull_request(client, number: int, title: str = "Update the README") -> int:
    payload = json.loads((GITHUB / "pull_request.synchronize.json").read_bytes())
    payload["repository"]["full_name"] = "octo/project"
    payload["number"] = payload["pull_request"]["number"] = number
    payload["pull_request"]["title"] = title
    payload["pull_request"]["base"]["ref"] = "main"
    answer = post_hook(client, json.dumps(payload).encode(), event="pull_request")
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["build"]["number"]


def finish(session, number: int, status: Status, seconds: float) -> None:
    """Give build ``number`` of octo/project a result that took ``seconds``."""
    build = session.scalar(select(Build).where(Build.number == number))
    build.status = status
    build.started_at = utcnow() - timedelta(seconds=seconds + 5)
    build.finished_at = build.started_at + timedelta(seconds=seconds)
    session.commit()


@pytest.fixture
def two_per_page(resources) -> None:
    resources.settings = dataclasses.replace(resources.settings, builds_per_page=2)


def page_of(client, url: str, status: int = 200) -> str:
    answer = client.get(url)
    assert answer.status_code == status, answer.get_data(as_text=True)
    return answer.get_data(as_text=True)


def words(html: str) -> str:
    """The page's text with every run of white space one space, as a browser shows it."""
    return " ".join(html.split())


def rows(html: str) -> str:
    """The list's rows (the tbody), where the builds are."""
    return html[html.index('<tbody data-live="rows">'):html.index("</tbody>")]


def numbers_in(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'/builds/(\d+)">#\d+</a>', rows(html))]


def links(html: str, rel: str) -> dict[str, list[str]]:
    href = re.search(rf'<a rel="{rel}" href="([^"]+)"', html).group(1)
    return parse_qs(urlsplit(unescape(href)).query)


# Filters ---------------------------------------------------------------------------------

def test_filters_narrow_the_list_by_branch_event_and_status(client, session, registered):
    for branch in ("main", "feature", "main"):
        push(client, branch=branch)
    pull_request(client, 7)
    finish(session, 3, Status.PASSED, 30)
    assert numbers_in(page_of(client, REPO)) == [4, 3, 2, 1]
    assert numbers_in(page_of(client, f"{REPO}?branch=feature")) == [2]
    assert numbers_in(page_of(client, f"{REPO}?event=pull_request")) == [4]
    assert numbers_in(page_of(client, f"{REPO}?event=push&branch=main")) == [3, 1]
    assert numbers_in(page_of(client, f"{REPO}?status=passed")) == [3]
    assert numbers_in(page_of(client, f"{REPO}?branch=&event=&status=queued")) == [4, 2, 1]
    form = page_of(client, f"{REPO}?event=pull_request&status=queued")
    assert '<option value="pull_request" selected>pull request</option>' in form
    assert "<option selected>queued</option>" in form
    nothing = page_of(client, f"{REPO}?branch=gone")
    assert "No builds match these filters" in nothing and "No builds yet" not in nothing


def test_pager_links_keep_the_filters(client, registered, two_per_page):
    for branch in ("main", "feature", "main", "main", "main"):
        push(client, branch=branch)
    first = page_of(client, f"{REPO}?branch=main&event=push")
    assert numbers_in(first) == [5, 4]
    assert "page 1 of 2 · 4 builds" in first
    older = links(first, "next")
    assert older == {"branch": ["main"], "event": ["push"], "page": ["2"]}
    second = page_of(client, f"{REPO}?branch=main&event=push&page=2")
    assert numbers_in(second) == [3, 1]
    assert links(second, "prev") == {"branch": ["main"], "event": ["push"], "page": ["1"]}


def test_unknown_filter_values_are_named_and_the_form_keeps_what_was_sent(client, registered):
    push(client)
    answer = client.get(f"{REPO}?branch=a..b&event=nightly&status=green&page=0")
    assert answer.status_code == 400
    html = unescape(answer.get_data(as_text=True))
    assert "branch: 'a..b' is not a branch name git accepts" in html
    assert "event 'nightly' is not one of push, pull_request, tag, manual" in html
    assert "status 'green' is not one of queued, running, passed" in html
    assert "page '0' is not a page number; pages count from 1" in html
    assert 'name="branch" value="a..b"' in html
    assert '<tbody data-live="rows">' not in html
    word = client.get(f"{REPO}?page=zzz")
    assert word.status_code == 400
    assert "page &#39;zzz&#39; is not a page number" in word.get_data(as_text=True)


def test_the_api_takes_the_same_filters_and_refuses_the_same_values(client, registered):
    push(client, branch="feature")
    push(client)
    listed = client.get("/api/repos/octo/project/builds?branch=feature&event=push").get_json()
    assert [build["number"] for build in listed["builds"]] == [1]
    refused = client.get("/api/repos/octo/project/builds?event=nightly&status=green")
    assert refused.status_code == 400
    message = refused.get_json()["error"]["message"]
    assert "event 'nightly' is not one of" in message and "status 'green' is not one of" in message


# Pages past the end ----------------------------------------------------------------------

def test_a_page_past_the_end_says_so_and_links_to_the_last_one(client, registered,
                                                                two_per_page):
    for _ in range(5):
        push(client)
    html = page_of(client, f"{REPO}?page=99&status=queued")
    assert "There is no page 99: this list has 3 pages." in words(html)
    last = re.search(r'<a href="([^"]+)">Go to the last page \(page 3\)\s*</a>', html).group(1)
    assert parse_qs(urlsplit(unescape(last)).query) == {"status": ["queued"], "page": ["3"]}
    assert "No builds yet" not in html
    huge = page_of(client, f"{REPO}?page={10**30}")
    assert f"There is no page {10**30}" in huge
    assert "There is no page 2: this list is empty." in words(page_of(
        client, f"{REPO}?branch=gone&page=2"))
    assert "There is no page 4" in page_of(client, f"{REPO}/branches?page=4")
    assert page_of(client, f"{REPO}/pulls?page=x", status=400).count("is not a page number") == 1


# Branches and pull requests -----------------------------------------------------------------

def test_branches_show_the_newest_push_of_each_default_first(client, session, registered):
    push(client, branch="feature", message="Feature work")
    push(client, branch="main", message="Main work")
    push(client, branch="zeta", message="Zeta work")
    push(client, branch="feature", message="More feature work")
    pull_request(client, 9)
    finish(session, 4, Status.FAILED, 12)
    html = page_of(client, f"{REPO}/branches")
    body = rows(html)
    assert [unescape(name) for name in re.findall(r'\?branch=([^"]+)">', body)] == [
        "main", "feature", "zeta"]
    assert numbers_in(html) == [2, 4, 3]
    assert "Main work" in body and "More feature work" in body and "Update the README" not in body
    assert "status-failed" in body and '<span class="tag">default</span>' in body
    assert 'aria-current="page">Branches</a>' in html
    assert "page 1 of 1 · 3 branches" in html


def test_pull_requests_show_the_newest_build_of_each(client, session, registered):
    pull_request(client, 3, title="First try")
    pull_request(client, 4, title="Other change")
    push(client)
    pull_request(client, 3, title="Second try")
    finish(session, 4, Status.PASSED, 20)
    html = page_of(client, f"{REPO}/pulls")
    body = rows(html)
    assert re.findall(r"PR #(\d+)", body) == ["3", "4"]
    assert numbers_in(html) == [4, 2]
    assert "Second try" in body and "First try" not in body
    assert 'href="https://github.com/Codertocat/Hello-World/pull/2"' in body
    assert 'aria-current="page">Pull requests</a>' in html
    assert "page 1 of 1 · 2 pull requests" in html


def test_empty_branches_and_pull_requests_say_so(client, registered):
    assert "No branch has been built yet." in page_of(client, f"{REPO}/branches")
    assert "No pull request has been built yet." in page_of(client, f"{REPO}/pulls")
    assert client.get("/octo/nothing/branches").status_code == 404


def test_the_branches_query_walks_the_branch_index(session, registered, database_kind):
    """With 2,000 builds the planner could scan the table; the plan still takes each
    branch and its newest build from ``ix_builds_repo_branch``."""
    session.add_all(Build(repo_id=registered.id, number=number, event="push",
                          ref=f"refs/heads/b{number % 7}", branch=f"b{number % 7}", sha="a" * 40)
                    for number in range(1, 2001))
    session.commit()
    statements = []
    engine = session.get_bind()

    def keep(_conn, _cursor, statement, parameters, _context, _many):
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        heads, total = store.branch_heads(session, registered, 1, 25)
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    assert (total, [build.number for build in heads][:2]) == (7, [2000, 1999])
    statement, parameters = statements[-1]
    explain = "EXPLAIN QUERY PLAN " if database_kind == "sqlite" else "EXPLAIN "
    if database_kind == "postgresql":
        session.execute(select(1))  # a transaction to analyse in
        session.connection().exec_driver_sql("ANALYZE builds")
    plan = " ".join(str(row) for row in session.connection().exec_driver_sql(
        explain + statement, parameters))
    assert plan.count("ix_builds_repo_branch") >= 2, plan


# The duration chart -------------------------------------------------------------------------

def test_the_chart_has_a_linked_bar_per_build_coloured_by_result(client, session, registered):
    push(client, message="one")
    push(client, branch="feature")
    push(client)
    finish(session, 1, Status.PASSED, 30)
    finish(session, 2, Status.FAILED, 90)
    html = page_of(client, REPO)
    chart = html[html.index('<figure class="chart">'):html.index("</figure>")]
    bars = re.findall(r'<a href="([^"]+)"><title>([^<]+)</title><rect class="bar bar-(\w+)"'
                      r'\s+x="[\d.]+" y="([\d.]+)" width="8"\s+height="([\d.]+)"/></a>', chart)
    assert [(href, title, status) for href, title, status, _y, _h in bars] == [
        ("/octo/project/builds/1", "#1 passed · 30s", "passed"),
        ("/octo/project/builds/2", "#2 failed · 1m 30s", "failed"),
        ("/octo/project/builds/3", "#3 queued", "queued"),
    ]
    heights = [float(height) for *_rest, height in bars]
    assert heights[1] == pytest.approx(3 * heights[0], rel=0.01)  # 90 s is three times 30 s
    assert heights[2] == charts.MIN_BAR
    assert re.findall(r'class="gridlabel"[^>]*>([^<]+)</text>', chart) == ["1m", "2m"]
    assert "Duration of the last 3 builds, oldest first" in words(chart)
    feature = page_of(client, f"{REPO}?branch=feature")
    assert re.findall(r'<title>(#\d+)', feature) == ["#2"]
    assert "Duration of the last 1 build of feature, oldest first" in words(feature)


def test_the_chart_shows_the_newest_fifty_builds(client, registered):
    for _ in range(charts.SLOTS + 2):
        push(client)
    html = page_of(client, REPO)
    titles = re.findall(r"<title>#(\d+)", html)
    assert (len(titles), titles[0], titles[-1]) == (charts.SLOTS, "3", str(charts.SLOTS + 2))


@pytest.mark.parametrize(("longest", "expected"), [
    (0, (1, 1)), (0.4, (1, 1)), (4.5, (5, 1)), (7, (5, 2)), (30, (15, 2)), (45, (30, 2)),
    (60, (30, 2)), (90, (60, 2)), (250, (300, 1)), (3600, (1800, 2)),
    (5 * 86400, (3600 * 60, 2)),
])
def test_the_scale_has_one_or_two_round_gridlines(longest, expected):
    step, lines = charts.scale(longest)
    assert (step, lines) == expected
    assert step * (lines - 1) < longest <= step * lines or longest == 0


# Live lists ---------------------------------------------------------------------------------

def test_list_pages_carry_their_stream_and_where_it_starts(client, registered, redis_client):
    push(client)
    newest = changes.latest_id(redis_client)
    assert newest != "0-0"
    repo_page = page_of(client, REPO)
    assert f'data-events="/octo/project/events/builds" data-after="{newest}"' in repo_page
    for path in (f"{REPO}/branches", f"{REPO}/pulls"):
        assert 'data-events="/octo/project/events/builds"' in page_of(client, path)
    assert f'data-events="/events/builds" data-after="{newest}"' in page_of(client, "/")
    assert re.search(r'<script src="/static/lists.js\?v=\w+" defer></script>', repo_page)


def test_a_repository_stream_gets_a_notice_when_a_webhook_arrives(server, client, registered):
    with requests.get(f"{server}{REPO}/events/builds", stream=True, timeout=30) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        number = push(client)
        event_id, kind, data = next(sse_events(stream))
    assert (kind, data) == ("change", {"repos": ["octo/project"]})
    assert re.fullmatch(r"\d+-\d+", event_id)
    assert number == 1


def private_repo(session, git_repo) -> None:
    repo = store.add_repo(session, "octo/secret", "github", str(git_repo.path), "shh-secret")
    store.update_repo(session, repo, private=True)


def first_change(client, path: str, after: str, headers: dict | None = None) -> dict:
    """The first ``change`` event of the stream at ``path`` read from ``after`` on."""
    answer = client.get(f"{path}?after={after}", headers=headers or {})
    assert answer.status_code == 200
    chunks = answer.response
    try:
        for chunk in chunks:
            text = chunk.decode() if isinstance(chunk, bytes) else chunk
            if text.startswith("id: "):
                return json.loads(text.split("data: ", 1)[1])
    finally:
        answer.close()
    raise AssertionError("the stream ended without a change")


def test_streams_hide_private_repositories_from_strangers(client, session, registered,
                                                         git_repo, redis_client):
    private_repo(session, git_repo)
    start = changes.latest_id(redis_client)
    post_hook(client, push_payload("octo/secret", "a" * 40), secret="shh-secret")
    push(client)
    assert first_change(client, "/events/builds", start) == {"repos": ["octo/project"]}
    assert client.get("/octo/secret/events/builds").status_code == 404
    reader = add_user(session, "rita", grants={store.get_repo(session, "octo/secret"): "read"})
    headers = token_headers(session, reader)
    assert first_change(client, "/events/builds", start, headers) == {
        "repos": ["octo/project", "octo/secret"]}
    assert first_change(client, "/octo/secret/events/builds", start, headers) == {
        "repos": ["octo/secret"]}


def test_a_repository_registered_after_the_stream_began_is_checked_too(
        client, session, registered, git_repo, redis_client):
    start = changes.latest_id(redis_client)
    answer = client.get(f"/events/builds?after={start}")
    chunks = iter(answer.response)
    assert next(chunks).startswith(b"retry:")
    private_repo(session, git_repo)
    store.add_repo(session, "octo/later", "github", str(git_repo.path), "later-secret")
    post_hook(client, push_payload("octo/secret", "a" * 40), secret="shh-secret")
    post_hook(client, push_payload("octo/later", "a" * 40), secret="later-secret")
    try:
        change = next(chunk for chunk in chunks if chunk.startswith(b"id: "))
    finally:
        answer.close()
    assert json.loads(change.decode().split("data: ", 1)[1]) == {"repos": ["octo/later"]}


def test_a_quiet_stream_sends_keep_alive_comments(client, registered, monkeypatch):
    monkeypatch.setattr(list_events, "KEEPALIVE_MS", 20)
    answer = client.get(f"{REPO}/events/builds")
    chunks = iter(answer.response)
    try:
        assert next(chunks) == b"retry: 2000\n\n"
        assert next(chunks) == b": keepalive\n\n"
    finally:
        answer.close()
