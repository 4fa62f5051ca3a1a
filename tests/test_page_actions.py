"""The build page's buttons (cancel, restart, rerun failed jobs, per-job cancel), the repo
page's "Build branch", and the matrix grid, as a signed-in browser uses them."""

import html

import pytest
from sqlalchemy import select

from ci import store
from ci.store.models import Build
from tests.conftest import add_user, csrf_of, post_hook, push_payload, sign_in

SHA = "e" * 40
AXES = [{"PYTHON": python, "DB": db} for python in ("3.11", "3.12")
        for db in ("sqlite", "postgres")]


def build(session, number: int) -> Build:
    """The build as committed now (after a commit, nothing is expired by itself)."""
    session.rollback()
    session.expire_all()
    return session.scalar(select(Build).where(Build.number == number))


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def writer(client, session, registered):
    add_user(session, "wes", grants={registered: "write"})
    sign_in(client, "wes")
    return client


def post_form(client, path: str, **fields):
    return client.post(path, data={"csrf_token": csrf_of(client), **fields})


def test_only_writers_see_the_buttons(client, session, registered):
    post_hook(client, push_payload("octo/project", SHA))
    assert "Cancel build" not in text(client.get("/octo/project/builds/1"))
    add_user(session, "rita", grants={registered: "read"})
    sign_in(client, "rita")
    assert "Cancel build" not in text(client.get("/octo/project/builds/1"))
    refused = post_form(client, "/octo/project/builds/1/cancel")
    assert refused.status_code == 403
    assert "rita may not change octo/project" in text(refused)
    assert build(session, 1).status == "queued"


def test_signed_out_buttons_lead_to_the_sign_in_page(client, registered):
    post_hook(client, push_payload("octo/project", SHA))
    answer = post_form(client, "/octo/project/builds/1/cancel")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/login?next=/octo/project/builds/1"


def test_cancel_restart_and_rerun_failed_from_the_build_page(writer, client, session):
    post_hook(client, push_payload("octo/project", SHA))
    page = text(client.get("/octo/project/builds/1"))
    assert "Cancel build" in page and "Restart build" not in page

    canceled = post_form(client, "/octo/project/builds/1/cancel")
    assert canceled.headers["Location"] == "/octo/project/builds/1"
    page = text(client.get("/octo/project/builds/1"))
    assert "Asked 1 job(s) to stop." in page
    assert build(session, 1).status == "canceled"
    assert build(session, 1).jobs[0].error == "canceled by wes"
    assert "Restart build" in page and "Rerun failed jobs" in page and "Cancel build" not in page

    restarted = post_form(client, "/octo/project/builds/1/restart")
    assert restarted.headers["Location"] == "/octo/project/builds/2"
    assert "Build #2 queued: build #1 again." in text(client.get("/octo/project/builds/2"))
    assert (build(session, 2).sha, build(session, 2).status) == (SHA, "queued")

    post_form(client, "/octo/project/builds/1/rerun-failed")
    assert "Rerunning 1 job(s)." in text(client.get("/octo/project/builds/1"))
    assert (build(session, 1).status, build(session, 1).jobs[0].attempt) == ("queued", 2)
    post_form(client, "/octo/project/builds/1/restart")
    assert "Not restarted: build #1 is still queued; cancel it first." in \
        text(client.get("/octo/project/builds/1"))


def test_one_job_of_a_matrix_is_canceled_alone(writer, client, session, registered):
    post_hook(client, push_payload("octo/project", SHA))
    first = store.get_build(session, registered, 1)
    store.plan_build(session, first.jobs[0], AXES, [False] * len(AXES))
    session.commit()
    page = text(client.get("/octo/project/builds/1"))
    assert page.count("Cancel job") == 4
    post_form(client, "/octo/project/builds/1/jobs/2/cancel")
    assert [job.status for job in build(session, 1).jobs] == [
        "queued", "canceled", "queued", "queued"]
    assert build(session, 1).status == "queued"
    assert post_form(client, "/octo/project/builds/1/jobs/9/cancel").status_code == 404


def test_a_two_axis_matrix_is_a_grid_and_others_a_list(writer, client, session, registered):
    post_hook(client, push_payload("octo/project", SHA))
    post_hook(client, push_payload("octo/project", "f" * 40))
    store.plan_build(session, store.get_build(session, registered, 1).jobs[0], AXES,
                     [False, False, False, True])
    store.plan_build(session, store.get_build(session, registered, 2).jobs[0],
                     [{"PYTHON": "3.11"}, {"PYTHON": "3.12"}], [False, False])
    session.commit()
    grid = text(client.get("/octo/project/builds/1"))
    table = grid[grid.index('<table class="list grid">'):grid.index("</table>")]
    assert "PYTHON ╲ DB" in table
    # Rows are the first axis, columns the second, in matrix order; each cell links its job.
    assert table.index("<th>sqlite</th>") < table.index("<th>postgres</th>")
    assert table.index("<th>3.11</th>") < table.index('href="#job-1"') < \
        table.index('href="#job-2"') < table.index("<th>3.12</th>") < table.index('href="#job-4"')
    assert "may fail" in table
    listed = text(client.get("/octo/project/builds/2"))
    assert 'class="list grid"' not in listed
    assert '<a href="#job-2">2 · PYTHON=3.12</a>' in listed


def test_build_a_branch_from_the_repo_page(writer, client, git_repo, session):
    sha = git_repo.commit({"a.txt": "1"})
    assert "Build branch" in text(client.get("/octo/project"))
    answer = post_form(client, "/octo/project/builds", branch="main")
    assert answer.headers["Location"] == "/octo/project/builds/1"
    assert (build(session, 1).sha, build(session, 1).event) == (sha, "manual")
    post_form(client, "/octo/project/builds", branch="nope")
    assert "Nothing was built: branch 'nope' does not exist in" in \
        text(client.get("/octo/project"))
