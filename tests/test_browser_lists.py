"""The lists in Chromium, on the Procfile's processes: builds appear and change state on
open pages without a reload, the repository page's filters work, and every list fits a
phone's screen."""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import Page, expect

from tests.browser import horizontal_overflow, shot
from tests.conftest import GITHUB, SECRET, sign
from tests.stack import Stack

pytestmark = pytest.mark.docker

REPO = "octo/project"
PASSES = "steps:\n  - name: check\n    run: echo all good\n"
FAILS = "steps:\n  - name: check\n    run: echo broken; exit 3\n"
#: How long a build may take on the one runner, from the push to its end on the page.
BUILD_MS = 120_000


def pull_request(stack: Stack, number: int, sha: str, title: str) -> int:
    """Send a signed pull request webhook for ``sha``; the build's number."""
    payload = json.loads((GITHUB / "pull_request.synchronize.json").read_bytes())
    payload["repository"]["full_name"] = REPO
    payload["number"] = payload["pull_request"]["number"] = number
    payload["pull_request"].update(title=title, html_url=f"https://forge.test/{REPO}/pull/{number}")
    payload["pull_request"]["head"]["sha"] = sha
    payload["pull_request"]["base"]["ref"] = "main"
    body = json.dumps(payload).encode()
    answer = stack.http.post(f"{stack.url}/hooks/github", data=body, timeout=10, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": f"pr-{time.monotonic_ns()}",
        "X-Hub-Signature-256": sign(body, SECRET)})
    assert answer.status_code == 202, answer.text
    return answer.json()["build"]["number"]


def row(page: Page, number: int):
    """The list's row of build ``number``."""
    return page.locator("tbody[data-live=rows] tr", has=page.locator(f'a:text-is("#{number}")'))


def test_a_pushed_build_appears_and_passes_on_open_pages(stack, git_repo, page):
    stack.add_repo(REPO, git_repo.path)
    page.goto(f"{stack.url}/{REPO}")
    expect(page.locator("main")).to_contain_text("No builds yet")
    index = page.context.new_page()
    index.goto(stack.url)
    expect(index.locator("main")).to_contain_text("no builds yet")
    for opened in (page, index):
        opened.evaluate("() => { window.notReloaded = true; }")

    first = stack.push(REPO, git_repo.commit({".slipway.yml": PASSES}, "First"), message="First")
    expect(row(page, first).locator(".status")).to_have_text("passed", timeout=BUILD_MS)
    expect(row(index, first).locator(".status")).to_have_text("passed", timeout=BUILD_MS)
    expect(page.locator("figure.chart rect.bar-passed")).to_have_count(1)

    second = stack.push(REPO, git_repo.commit({"b.txt": "2"}, "Second"), message="Second")
    expect(row(page, second)).to_contain_text("Second", timeout=BUILD_MS)
    expect(row(page, second).locator(".status")).to_have_text("passed", timeout=BUILD_MS)
    expect(row(index, second).locator(".status")).to_have_text("passed", timeout=BUILD_MS)
    assert page.locator("tbody[data-live=rows] tr").count() == 2
    expect(page.locator("figure.chart rect")).to_have_count(2)
    for opened in (page, index):
        assert opened.evaluate("() => window.notReloaded") is True


def build_history(stack: Stack, git_repo) -> dict[str, int]:
    """Twelve builds of mixed results on main and feature, and two pull requests, all
    finished; the number of each kind's newest."""
    stack.add_repo(REPO, git_repo.path)
    newest: dict[str, int] = {}
    for index in range(12):
        failing = index % 4 == 3
        branch = "feature" if index % 3 == 2 else "main"
        message = (f"Change {index}: make the checkout reuse the mirror cache and print the "
                   "time each step takes, which is a long first line")
        sha = git_repo.commit({".slipway.yml": FAILS if failing else PASSES, "n.txt": str(index)},
                              message)
        newest[f"{branch}-{'failed' if failing else 'passed'}"] = stack.push(
            REPO, sha, branch=branch, message=message)
    head = git_repo.commit({".slipway.yml": PASSES, "pr.txt": "1"}, "Pull request work")
    newest["pr-5"] = pull_request(stack, 5, head, "Speed up the checkout")
    newest["pr-8"] = pull_request(stack, 8, head, "Document the chart")
    for number in sorted(newest.values()):
        stack.wait_finished(REPO, number, timeout=BUILD_MS / 1000)
    return newest


def test_the_lists_filter_chart_and_fit_phones(stack, git_repo, page, phone, screenshots):
    newest = build_history(stack, git_repo)
    page.goto(f"{stack.url}/{REPO}")
    expect(page.locator("figure.chart rect.bar")).to_have_count(14)
    expect(page.locator("figure.chart rect.bar-failed")).to_have_count(3)
    shot(page, screenshots, "repo-page")

    page.fill("input[name=branch]", "feature")
    page.select_option("select[name=status]", "failed")
    page.click("form.filters button")
    expect(page).to_have_url(f"{stack.url}/{REPO}?branch=feature&event=&status=failed")
    expect(page.locator("tbody[data-live=rows] tr")).to_have_count(1)
    expect(row(page, newest["feature-failed"]).locator(".status")).to_have_text("failed")
    expect(page.locator("figure.chart rect.bar")).to_have_count(4)  # the feature builds
    page.goto(f"{stack.url}/{REPO}?status=green")
    expect(page.locator("div.error")).to_contain_text("status 'green' is not one of")
    expect(page.locator("select[name=status]")).to_have_value("")

    page.goto(f"{stack.url}/{REPO}/branches")
    expect(page.locator("tbody tr td.name")).to_have_text(["main default", "feature"])
    shot(page, screenshots, "branches")
    page.goto(f"{stack.url}/{REPO}/pulls")
    expect(page.locator("tbody tr td.name")).to_have_text(["PR #8", "PR #5"])
    shot(page, screenshots, "pulls")
    page.goto(stack.url)
    expect(row(page, newest["pr-8"]).locator(".status")).to_have_text("passed")
    shot(page, screenshots, "index")

    for name, path in (("index", ""), ("repo-page", f"/{REPO}"),
                       ("branches", f"/{REPO}/branches"), ("pulls", f"/{REPO}/pulls")):
        phone.goto(f"{stack.url}{path}")
        expect(phone.locator("tbody[data-live=rows] tr").first).to_be_visible()
        assert horizontal_overflow(phone) <= 0, name
        shot(phone, screenshots, f"{name}-phone")
    phone.goto(f"{stack.url}/{REPO}")
    message = row(phone, newest["main-passed"]).locator("td.message")
    assert message.evaluate("cell => cell.scrollWidth > cell.clientWidth")  # cut, with an ellipsis
