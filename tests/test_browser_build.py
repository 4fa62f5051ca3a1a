"""The build page in Chromium, on builds the Procfile's processes run: everything on it
changes live without a reload, steps fold, lines are numbered and linkable, a finished
failing build opens at its failure, and the search finds lines in folded steps."""

from __future__ import annotations

import re
import subprocess

import pytest
from playwright.sync_api import Page

from tests.browser import horizontal_overflow, shot
from tests.conftest import SLIPWAY

pytestmark = pytest.mark.docker

TIMEOUT_MS = 120_000
PASSWORD = "browser test password"
LIVE_PIPELINE = """\
steps:
  - name: prepare
    run: echo preparing
  - name: count
    run: for i in $(seq 1 60); do echo line $i; sleep 0.25; done
  - name: check
    run: echo about to fail; exit 3
"""
FAILING_MATRIX = """\
matrix:
  CELL: [red, blue]
steps:
  - name: setup
    run: echo setting up $CELL
  - name: many
    run: for i in $(seq 1 60); do echo "many line $i of $CELL"; done
  - name: long
    run: python3 -c "print('x' * 400)"
  - name: verdict
    run: for i in $(seq 1 50); do echo "trace line $i"; done; echo "failure of $CELL"; exit 2
"""


def sign_in_admin(stack, page: Page) -> None:
    subprocess.run([SLIPWAY, "user", "add", "ada", "--admin"], input=PASSWORD, text=True,
                   env=stack.env(), check=True, capture_output=True, timeout=60)
    page.goto(f"{stack.url}/login")
    page.fill("input[name=name]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def field(page: Page, name: str) -> str:
    return page.inner_text(f'[data-field="{name}"]')


def wait_field(page: Page, name: str, text: str) -> None:
    page.wait_for_function(
        "([name, text]) => document.querySelector(`[data-field=\"${name}\"]`)?.textContent"
        " === text", arg=[name, text], timeout=TIMEOUT_MS)


def number_of(page: Page, text: str, job: int = 1) -> int:
    """The line number of the first line of job ``job`` that holds ``text``."""
    return page.evaluate(
        "([job, text]) => [...document.querySelectorAll(`#job-${job}-log ol > li`)]"
        ".findIndex(line => line.textContent === text) + 1", [job, text])


def line_count(page: Page, step: str) -> int:
    return page.evaluate(f"document.querySelectorAll('#{step} ol > li').length")


def at_end(page: Page) -> bool:
    return page.evaluate("innerHeight + scrollY >= document.documentElement.scrollHeight - 40")


def in_view(page: Page, selector: str) -> bool:
    """Whether the element is within the window as it is scrolled."""
    box = page.locator(selector).bounding_box()
    return box is not None and 0 <= box["y"] and box["y"] + box["height"] <= page.evaluate(
        "innerHeight")


def more_lines(page: Page, than: int) -> None:
    """Wait for the running step's lines to number more than ``than``."""
    page.wait_for_function(
        "than => document.querySelectorAll('#job-1-step-1 ol > li').length > than",
        arg=than, timeout=TIMEOUT_MS)


def click_number(page: Page, job: int, number: int, shift: bool = False) -> None:
    page.locator(f"#job-{job}-log ol > li").nth(number - 1).click(
        position={"x": 6, "y": 4}, modifiers=["Shift"] if shift else [])


def test_a_running_build_changes_live_and_ends_failed_without_a_reload(
        stack, git_repo, page, phone, screenshots):
    sha = git_repo.commit({".slipway.yml": LIVE_PIPELINE})
    stack.add_repo("octo/project", git_repo.path)
    sign_in_admin(stack, page)
    number = stack.push("octo/project", sha)
    url = f"{stack.url}/octo/project/builds/{number}"
    page.goto(url)
    page.evaluate("window.slipwayMarker = 'the same page'")
    assert "Cancel build" in page.inner_text("#build-actions")

    wait_field(page, "j1.s2.status", "running")
    assert field(page, "b.status") == "running"
    assert page.title() == f"#{number} running · octo/project · Slipway"
    assert "favicon-running" in page.get_attribute("#favicon", "href")
    page.wait_for_function("() => !document.getElementById('job-1-step-0').open",
                           timeout=TIMEOUT_MS)
    assert page.evaluate("document.getElementById('job-1-step-1').open")
    ticking = field(page, "j1.s2.duration")
    page.wait_for_function(
        "text => document.querySelector('[data-field=\"j1.s2.duration\"]').textContent !== text",
        arg=ticking, timeout=10_000)
    page.wait_for_function(
        "() => document.querySelectorAll('#job-1-step-1 ol > li').length >= 8",
        timeout=TIMEOUT_MS)
    assert at_end(page)  # it follows the end
    shot(page, screenshots, "build-running")

    # Scrolled up, the page stays put while lines arrive; back at the end, it follows.
    page.wait_for_function("() => document.documentElement.scrollHeight > innerHeight + 200",
                           timeout=TIMEOUT_MS)
    assert at_end(page)
    page.evaluate("window.scrollTo(0, 0)")
    seen = line_count(page, "job-1-step-1")
    more_lines(page, seen + 2)
    assert page.evaluate("scrollY") == 0
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    seen = line_count(page, "job-1-step-1")
    more_lines(page, seen + 2)
    assert at_end(page)

    # Line links on lines that arrived live: a click, then a shift-click for a range.
    first, last = number_of(page, "line 2"), number_of(page, "line 5")
    click_number(page, 1, first)
    assert page.evaluate("location.hash") == f"#L{first}"
    click_number(page, 1, last, shift=True)
    assert page.evaluate("location.hash") == f"#L{first}-L{last}"
    assert page.locator("#job-1-log .marked").count() == last - first + 1

    phone.goto(url)  # opened mid-run, it shows the end and follows it
    seen = line_count(phone, "job-1-step-1")
    more_lines(phone, seen + 1)
    assert at_end(phone)
    assert horizontal_overflow(phone) <= 0
    shot(phone, screenshots, "build-running-phone")

    wait_field(page, "b.status", "failed")
    assert page.evaluate("window.slipwayMarker") == "the same page"
    assert page.title() == f"#{number} failed · octo/project · Slipway"
    assert "favicon-failed" in page.get_attribute("#favicon", "href")
    assert (field(page, "j1.s3.status"), field(page, "j1.s3.exit")) == ("failed", "exit 3")
    assert field(page, "j1.s2.status") == "passed"
    page.wait_for_function("() => !document.getElementById('job-1-step-1').open",
                           timeout=10_000)
    assert page.evaluate("document.getElementById('job-1-step-2').open")
    assert "about to fail" in page.inner_text("#job-1-step-2 ol")
    page.wait_for_selector("#build-actions >> text=Restart build", timeout=10_000)
    assert "Cancel build" not in page.inner_text("#build-actions")
    assert re.fullmatch(r"\d+\.\ds", field(page, "j1.s1.duration"))


def test_a_failed_matrix_build_opens_at_its_failure_and_finds_lines_in_folded_steps(
        stack, git_repo, page, phone, screenshots):
    sha = git_repo.commit({".slipway.yml": FAILING_MATRIX})
    stack.add_repo("octo/project", git_repo.path)
    number = stack.push("octo/project", sha)
    assert stack.wait_finished("octo/project", number)["status"] == "failed"
    url = f"{stack.url}/octo/project/builds/{number}"

    page.goto(url)
    failure = page.locator("#job-1-step-3")
    assert failure.get_attribute("open") is not None
    assert in_view(page, "#job-1-step-3 ol > li:last-child")  # scrolled to the failure
    assert page.inner_text("#job-1-step-3 ol > li:nth-last-child(2)") == "failure of red"
    page.screenshot(path=str(screenshots / "build-failed.png"))  # the window: at the failure
    assert page.evaluate("document.getElementById('job-1-step-1').open") is False
    summaries = page.locator("#job-1-log summary .step-name").all_inner_texts()
    assert summaries.count("Set up job") == 1 and summaries.count("setup") == 1
    shot(page, screenshots, "build-failed-full")

    # A line link names the job on a build of several; it opens the folded step.
    line = number_of(page, "many line 7 of blue", job=2)
    page.goto(f"{url}#job-2-L{line}-L{line + 2}")
    marked = page.locator("#job-2-log .marked")
    assert marked.all_inner_texts() == [f"many line {i} of blue" for i in (7, 8, 9)]
    page.screenshot(path=str(screenshots / "build-line-range.png"))
    assert page.evaluate("document.getElementById('job-2-step-1').open")
    page.goto(f"{url}#L{number_of(page, 'many line 3 of red')}")
    assert page.inner_text("#job-1-log .marked") == "many line 3 of red"

    page.goto(url)
    page.fill("#log-search", "many line 37 of")
    page.wait_for_function("() => document.getElementById('log-search-count').textContent"
                           " === '1 of 2'", timeout=10_000)
    current = page.locator("#job-1-log .current")
    assert current.inner_text() == "many line 37 of red" and current.is_visible()
    page.press("#log-search", "Enter")
    assert page.inner_text("#log-search-count") == "2 of 2"
    assert page.locator("#job-2-log .current").inner_text() == "many line 37 of blue"

    page.check("#log-times")
    stamp = page.evaluate("document.querySelector('#job-1-log ol > li').dataset.ts")
    assert re.fullmatch(r"\d\d:\d\d:\d\d", stamp)
    page.screenshot(path=str(screenshots / "build-search.png"))

    phone.goto(url)
    assert in_view(phone, "#job-1-step-3 ol > li:last-child")
    assert horizontal_overflow(phone) <= 0
    shot(phone, screenshots, "build-failed-phone")
    phone.click("#job-1-step-2 summary")  # its 400-character line wraps
    assert phone.locator("#job-1-step-2 ol > li").first.inner_text() == "x" * 400
    assert horizontal_overflow(phone) <= 0


MATRIX_PIPELINE = """\
matrix:
  CELL: [one, two]
steps:
  - name: greet
    run: echo "hello from $CELL"
"""


def test_the_jobs_of_a_matrix_appear_live_with_their_logs(stack, git_repo, page):
    busy = git_repo.commit({".slipway.yml": "steps:\n  - name: wait\n    run: sleep 4\n"})
    stack.add_repo("octo/project", git_repo.path)
    stack.push("octo/project", busy, branch="busy")  # holds the one runner a while
    sha = git_repo.commit({".slipway.yml": MATRIX_PIPELINE})
    number = stack.push("octo/project", sha)
    page.goto(f"{stack.url}/octo/project/builds/{number}")
    page.evaluate("window.slipwayMarker = 'the same page'")
    assert page.locator("section.job").count() == 1  # queued: its matrix is not planned yet

    page.wait_for_function(
        "() => document.querySelector('#job-2-log')?.textContent.includes('hello from two')",
        timeout=TIMEOUT_MS)
    wait_field(page, "b.status", "passed")
    assert page.evaluate("window.slipwayMarker") == "the same page"
    assert page.locator("#matrix a[href='#job-2']").count() == 1
    for job, cell in ((1, "one"), (2, "two")):
        lines = page.locator(f"#job-{job}-log ol > li").all_text_contents()
        assert lines.count(f"hello from {cell}") == 1
        assert field(page, f"j{job}.s1.status") == "passed"
