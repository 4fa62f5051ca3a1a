"""The browser harness itself: a build run by the Procfile's processes, seen in Chromium."""

import pytest

from tests.browser import horizontal_overflow, shot

pytestmark = pytest.mark.docker


def test_a_pushed_build_passes_and_its_page_shows_it(stack, git_repo, page, phone, screenshots):
    pipeline = "steps:\n  - name: hello\n    run: echo hello-browser\n"
    sha = git_repo.commit({".slipway.yml": pipeline})
    stack.add_repo("octo/project", git_repo.path)
    number = stack.push("octo/project", sha)
    assert stack.wait_finished("octo/project", number)["status"] == "passed"
    page.goto(f"{stack.url}/octo/project/builds/{number}")
    assert "hello-browser" in page.text_content(".log")  # in its step, folded as it passed
    shot(page, screenshots, "smoke-build")
    phone.goto(f"{stack.url}/octo/project/builds/{number}")
    assert horizontal_overflow(phone) <= 0
