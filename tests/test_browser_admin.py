"""The admin pages in Chromium, on Slipway's Procfile processes: an admin adds a repository
whose webhook is made on a local GitHub API, changes its settings, adds a user and a grant,
and watches the runner run a build and the queue hold the next; on a phone, no admin page
scrolls sideways."""

from __future__ import annotations

import subprocess

import pytest

from tests.browser import horizontal_overflow, shot
from tests.conftest import SECRET, SLIPWAY
from tests.forge_hooks_server import ForgeHooks, serving
from tests.polling import wait_for

pytestmark = pytest.mark.docker

PASSWORD = "a long admin password"
TOKEN = "ghp-browser-4f1e9c0b"
REPO = "acme/widgets"
SLOW = "steps:\n  - name: wait\n    run: sleep 120\n"


def add_admin(stack, name: str) -> None:
    """``slipway user add NAME --admin`` with the password on standard input."""
    done = subprocess.run([SLIPWAY, "user", "add", name, "--admin"], env=stack.env(),
                          input=PASSWORD, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def sign_in(page, stack, name: str) -> None:
    page.goto(f"{stack.url}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("main form button")
    page.wait_for_url(f"{stack.url}/")


def reloaded_until(page, selector: str, wanted: str) -> str:
    """The text of ``selector`` once it holds ``wanted``, reloading the page meanwhile."""
    def holds() -> str | None:
        page.reload()
        shown = page.inner_text(selector) if page.query_selector(selector) else ""
        return shown if wanted in shown else None

    return wait_for(holds, timeout=90, interval=0.5, what=f"{wanted!r} in {selector}")


def test_an_admin_adds_a_repository_and_runs_it(stack, git_repo, page, phone, screenshots):
    add_admin(stack, "ada")
    sign_in(page, stack, "ada")
    assert page.inner_text("nav.admin-nav").split() == ["Runners", "Queue", "Users", "Add",
                                                        "repository"]

    with serving(ForgeHooks("github", TOKEN)) as api:
        page.click("text=Add repository")
        page.fill("input[name=full_name]", REPO)
        page.fill("input[name=clone_url]", str(git_repo.path))
        page.fill("input[name=secret]", SECRET)
        page.fill("input[name=token]", TOKEN)
        page.fill("input[name=api_url]", api.url)
        shot(page, screenshots, "add-repository")
        page.click("main form button")
        assert "The webhook was made on github" in page.inner_text("main")
    shot(page, screenshots, "add-repository-added")
    assert TOKEN not in page.content()
    assert [(hook["config"]["url"], hook["config"]["secret"]) for hook in api.hooks] == [
        (f"{stack.url}/hooks/github", SECRET)]

    page.click("text=Its builds")
    shot(page, screenshots, "repo-settings-link")
    page.click("nav.tabs a:text-is(\"Settings\")")
    page.fill("#secrets input[name=name]", "DEPLOY_KEY")
    page.fill("#secrets textarea[name=value]", "value-never-shown")
    page.click("#secrets form.stacked button")
    assert "Secret DEPLOY_KEY added." in page.inner_text("main")
    assert "value-never-shown" not in page.content()
    page.fill("#limits input[name=memory]", "lots")
    page.click("#limits form button")
    assert "'lots' is not an amount of memory" in page.inner_text("#limits")
    assert page.input_value("#limits input[name=memory]") == "lots"
    shot(page, screenshots, "repo-settings")

    page.click("nav.admin-nav >> text=Users")
    page.fill("#add input[name=name]", "bob")
    page.fill("#add input[name=password]", "bob's long password")
    page.fill("#add input[name=password_again]", "bob's long password")
    page.click("#add button")
    page.select_option("#grant select[name=user]", "bob")
    page.select_option("#grant select[name=repo]", REPO)
    page.select_option("#grant select[name=permission]", "write")
    page.click("#grant button")
    assert "bob may now write acme/widgets" in page.inner_text("main")
    assert "acme/widgets" in page.inner_text("table.users")
    shot(page, screenshots, "users")

    sha = git_repo.commit({".slipway.yml": SLOW})
    first = stack.push(REPO, sha)
    page.goto(f"{stack.url}/admin/runners")
    busy = reloaded_until(page, "table.runners", "busy")
    assert f"{REPO} #{first} · job 1" in " ".join(busy.split()) and "alive" in busy
    shot(page, screenshots, "runners")

    second = stack.push(REPO, git_repo.commit({"more.txt": "x"}), message="second")
    page.goto(f"{stack.url}/admin/queue")
    waiting = reloaded_until(page, "table.queue", REPO)
    assert f"#{second} · job 1" in waiting
    shot(page, screenshots, "queue")

    sign_in(phone, stack, "ada")
    for path, name in (("/admin/repos/new", "add-repository"),
                       (f"/{REPO}/settings", "repo-settings"), ("/admin/users", "users"),
                       ("/admin/runners", "runners"), ("/admin/queue", "queue")):
        phone.goto(stack.url + path)
        assert horizontal_overflow(phone) <= 0, path
        shot(phone, screenshots, f"{name}-phone")

    for number in (second, first):
        page.goto(f"{stack.url}/{REPO}/builds/{number}")
        page.click("button:has-text('Cancel build')")
        assert stack.wait_finished(REPO, number)["status"] == "canceled"
    page.goto(f"{stack.url}/admin/runners")
    assert "idle" in reloaded_until(page, "table.runners", "idle")
