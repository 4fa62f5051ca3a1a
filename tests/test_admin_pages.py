"""The admin pages over HTTP, on a real database and Redis: who may open each, adding a
repository (and its webhook, on a local forge API), a repository's settings, users and
grants, the runners and the queue. Secrets and tokens never come back in a page."""

from __future__ import annotations

import html
import re

import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue, SimpleWorker
from rq.job import Job as RQJob

from ci import store
from ci.accounts import crypto, repo_secrets, webhook_secrets
from ci.pipeline import keys
from tests.conftest import add_user, csrf_of, free_port, post_hook, push_payload, sign_in
from tests.forge_hooks_server import ForgeHooks, serving

SHA = "a" * 40
TOKEN = "ghp-0b7c4e2a9f1d4c55"
GLOBAL_PAGES = ["/admin/repos/new", "/admin/users", "/admin/runners", "/admin/queue"]


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def post_form(client, path: str, **fields):
    return client.post(path, data={"csrf_token": csrf_of(client), **fields})


def forget(session) -> None:
    """Make the test's session read what is committed now: it keeps what it loaded, even
    across commits, until told to forget it."""
    session.rollback()
    session.expire_all()


def fresh(session, full_name: str = "octo/project"):
    """The repository as committed now."""
    forget(session)
    return store.get_repo(session, full_name)


@pytest.fixture
def admin_client(client, session):
    add_user(session, "ada", admin=True)
    sign_in(client, "ada")
    return client


@pytest.fixture
def writer_client(client, session, registered):
    add_user(session, "wes", grants={registered: "write"})
    sign_in(client, "wes")
    return client


def cells(page: str) -> list[list[str]]:
    """The text of each cell of each row of the page's table body."""
    body = page[page.index("<tbody>"):page.index("</tbody>")]
    return [[" ".join(re.sub(r"<[^>]+>", " ", cell).split())
             for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.DOTALL)]


def shown_secret(page: str) -> str:
    return re.search(r"<dt>Secret</dt><dd><code class=\"copy\">([^<]+)</code>", page).group(1)


# Who may open what -------------------------------------------------------------------------

def test_people_not_signed_in_are_sent_to_sign_in(client, registered):
    for path in [*GLOBAL_PAGES, "/octo/project/settings"]:
        answer = client.get(path)
        assert answer.status_code == 302, path
        assert answer.headers["Location"] == f"/login?next={path}"
    refused = post_form(client, "/admin/repos/new", full_name="x/y", clone_url="/tmp/x")
    assert refused.headers["Location"] == "/login?next=/admin/repos/new"
    assert store.get_repo(client.application.extensions["slipway"].sessions(), "x/y") is None


def test_a_private_repository_settings_are_not_found_by_strangers(client, session, registered):
    store.update_repo(session, registered, private=True)
    assert client.get("/octo/project/settings").status_code == 404
    add_user(session, "bob")
    sign_in(client, "bob")
    assert client.get("/octo/project/settings").status_code == 404


def test_people_without_the_right_get_403_and_no_data(client, session, registered):
    add_user(session, "rita", grants={registered: "read"})
    add_user(session, "zed-the-admin", admin=True)
    sign_in(client, "rita")
    for path in ("/admin/repos/new", "/admin/users", "/octo/project/settings"):
        refused = client.get(path)
        assert refused.status_code == 403, path
        assert "zed-the-admin" not in text(refused) and "hooks/github" not in text(refused)
    assert post_form(client, "/admin/users", name="mallory", password="long enough!",
                     password_again="long enough!").status_code == 403
    assert store.get_user(session, "mallory") is None
    assert post_form(client, "/admin/grants", user="rita", repo="octo/project",
                     permission="write").status_code == 403
    assert post_form(client, "/octo/project/settings/general", default_branch="evil",
                     private="on").status_code == 403
    assert (fresh(session).default_branch, fresh(session).private) == ("main", False)
    assert post_form(client, "/octo/project/settings/secrets", name="X",
                     value="y").status_code == 403
    assert fresh(session).secrets == []
    for path in ("/admin/runners", "/admin/queue"):
        assert client.get(path).status_code == 200, path


def test_the_header_shows_each_person_the_pages_they_may_use(client, session, registered):
    assert "/admin/runners" not in text(client.get("/"))
    add_user(session, "rita", grants={registered: "read"})
    sign_in(client, "rita")
    page = text(client.get("/"))
    assert "/admin/runners" in page and "/admin/queue" in page
    assert "/admin/users" not in page and "/admin/repos/new" not in page
    assert "/octo/project/settings" not in text(client.get("/octo/project"))
    add_user(session, "ada", admin=True)
    sign_in(client, "ada")
    page = text(client.get("/"))
    assert "/admin/users" in page and "/admin/repos/new" in page
    assert "/octo/project/settings" in text(client.get("/octo/project"))


def test_forms_need_their_csrf_token(admin_client, session, registered):
    for path, fields in (("/admin/repos/new", {"full_name": "x/y", "clone_url": "/tmp/x"}),
                         ("/admin/users", {"name": "eve", "password": "long enough!",
                                           "password_again": "long enough!"}),
                         ("/octo/project/settings/general", {"default_branch": "dev"})):
        refused = admin_client.post(path, data=fields)
        assert refused.status_code == 400, path
        assert "security token (CSRF)" in text(refused)
    assert store.get_repo(session, "x/y") is None and store.get_user(session, "eve") is None
    assert fresh(session).default_branch == "main"


# Adding a repository -----------------------------------------------------------------------

def test_an_admin_adds_a_repository_and_sees_its_secret_once(admin_client, session, app):
    assert "Add a repository" in text(admin_client.get("/admin/repos/new"))
    added = post_form(admin_client, "/admin/repos/new", full_name="acme/widgets",
                      forge="gitlab", default_branch="trunk", private="on", secret="",
                      clone_url="https://deploy:hunter2-pass@git.example.com/acme/widgets.git")
    page = text(added)
    assert added.status_code == 201 and added.headers["Cache-Control"] == "no-store"
    assert "http://ci.test/hooks/gitlab" in page
    secret = shown_secret(page)
    repo = fresh(session, "acme/widgets")
    assert len(secret) >= 40
    assert webhook_secrets.reveal(app.extensions["slipway"].settings, repo) == secret
    assert (repo.forge, repo.default_branch, repo.private, repo.forge_token) == (
        "gitlab", "trunk", True, None)
    assert "hunter2-pass" not in page
    settings_page = text(admin_client.get("/acme/widgets/settings"))
    assert "http://ci.test/hooks/gitlab" in settings_page and secret not in settings_page


def test_bad_input_keeps_the_form_and_says_why(admin_client, session, registered):
    sent = {"full_name": "not a name", "forge": "gitea", "default_branch": "dev",
            "clone_url": "https://git.example.com/x.git", "secret": "my-own-secret",
            "api_url": "https://gitea.example.com/api/v1", "token": TOKEN}
    refused = post_form(admin_client, "/admin/repos/new", **sent)
    page = text(refused)
    assert refused.status_code == 400
    assert "'not a name' is not a repository name" in page
    for key in ("full_name", "default_branch", "clone_url", "secret", "api_url"):
        assert f'name="{key}" value="{sent[key]}"' in page, key
    assert '<option value="gitea" selected>' in page
    assert TOKEN not in page and "The forge token was not kept; paste it again." in page
    for fields, message in (
            ({"full_name": "octo/project"}, "octo/project is already registered"),
            ({"full_name": "acme/widgets", "clone_url": ""}, "give the clone URL"),
            ({"full_name": "acme/widgets", "api_url": ""}, "gitea has no default API URL"),
            ({"full_name": "acme/widgets", "default_branch": "a..b"}, "is not a branch name"),
            ({"full_name": "acme/widgets", "api_url": "ftp://x"}, "is not an API URL")):
        again = post_form(admin_client, "/admin/repos/new", **{**sent, **fields})
        assert again.status_code == 400 and message in text(again), message
    assert [repo.full_name for repo, _ in store.list_repos(session)] == ["octo/project"]


def test_a_token_makes_the_webhook_on_the_forge(admin_client, session, app):
    with serving(ForgeHooks("github", TOKEN)) as api:
        added = post_form(admin_client, "/admin/repos/new", full_name="acme/widgets",
                          forge="github", clone_url="https://github.com/acme/widgets.git",
                          default_branch="main", token=TOKEN, api_url=api.url)
    page = text(added)
    assert added.status_code == 201
    assert "The webhook was made on github" in page and TOKEN not in page
    assert [hook["config"]["url"] for hook in api.hooks] == ["http://ci.test/hooks/github"]
    assert api.hooks[0]["config"]["secret"] == shown_secret(page)
    repo = fresh(session, "acme/widgets")
    key = repo_secrets.key(app.extensions["slipway"].settings)
    assert (crypto.decrypt(key, repo.forge_token), repo.api_url) == (TOKEN, api.url)


def test_a_forge_refusal_is_shown_and_the_repository_stays(admin_client, session):
    refusal = (403, {"message": "Resource not accessible by integration"})
    with serving(ForgeHooks("github", TOKEN, refusal=refusal)) as api:
        added = post_form(admin_client, "/admin/repos/new", full_name="acme/widgets",
                          forge="github", clone_url="https://github.com/acme/widgets.git",
                          default_branch="main", token=TOKEN, api_url=api.url)
    page = text(added)
    assert added.status_code == 201
    assert "The webhook was not made: GitHub answered 403" in page
    assert "Resource not accessible by integration" in page
    assert "Add the webhook on the forge by hand" in page
    assert "http://ci.test/hooks/github" in page and shown_secret(page)
    assert TOKEN not in page
    assert fresh(session, "acme/widgets") is not None


# A repository's settings -------------------------------------------------------------------

def test_general_settings_and_limits_round_trip(writer_client, session):
    page = text(writer_client.get("/octo/project/settings"))
    assert "http://ci.test/hooks/github" in page and 'value="main"' in page
    saved = post_form(writer_client, "/octo/project/settings/general", default_branch="develop",
                      private="on")
    assert saved.headers["Location"] == "/octo/project/settings"
    assert "Saved: default branch develop, private." in text(writer_client.get(saved.location))
    assert (fresh(session).default_branch, fresh(session).private) == ("develop", True)
    post_form(writer_client, "/octo/project/settings/general", default_branch="develop")
    assert fresh(session).private is False

    post_form(writer_client, "/octo/project/settings/limits", memory="1g", cpus="2", pids="")
    repo = fresh(session)
    # The CPUs sent were the default: not pinned, so it follows the administrator's default.
    assert (repo.job_memory, repo.job_cpus, repo.job_pids) == ("1g", None, None)
    page = text(writer_client.get("/octo/project/settings"))
    assert "Job limits: memory 1g, CPUs 2, processes 1024." in page
    assert 'name="memory" value="1g"' in page


def test_settings_refusals_keep_the_input_and_say_why(writer_client, session):
    for path, fields, message, kept in (
            ("general", {"default_branch": "bad..branch", "private": "on"},
             "'bad..branch' is not a branch name", 'value="bad..branch"'),
            ("limits", {"memory": "lots", "cpus": "1", "pids": "2048"},
             "'lots' is not an amount of memory", 'value="lots"'),
            ("limits", {"memory": "1g", "cpus": "99", "pids": "2048"},
             "cpus 99.0 must be above 0 and at most 4", 'value="99"'),
            ("limits", {"memory": "1g", "cpus": "1", "pids": "many"},
             "processes 'many' is not a whole number", 'value="many"'),
            ("forge", {"api_url": "ftp://x", "token": TOKEN}, "'ftp://x' is not an API URL",
             'value="ftp://x"')):
        refused = post_form(writer_client, f"/octo/project/settings/{path}", **fields)
        page = text(refused)
        assert refused.status_code == 400, message
        assert message in page and kept in page, message
        assert TOKEN not in page
    repo = fresh(session)
    assert (repo.default_branch, repo.private, repo.job_memory, repo.job_cpus,
            repo.forge_token) == ("main", False, None, None, None)


def test_secrets_are_write_only(writer_client, session, app):
    value, other = "s3cr3t-value-9876", "n3w-value-5432"
    added = post_form(writer_client, "/octo/project/settings/secrets", name="API_KEY",
                      value=value)
    page = text(writer_client.get(added.location))
    assert "Secret API_KEY added." in page and "API_KEY" in page and value not in page
    post_form(writer_client, "/octo/project/settings/secrets", name="API_KEY", value=other)
    page = text(writer_client.get("/octo/project/settings"))
    assert "Secret API_KEY replaced." in page and other not in page
    key = repo_secrets.key(app.extensions["slipway"].settings)
    assert [crypto.decrypt(key, secret.value) for secret in fresh(session).secrets] == [other]

    refused = post_form(writer_client, "/octo/project/settings/secrets", name="lower",
                        value=value)
    page = text(refused)
    assert refused.status_code == 400
    assert "'lower' is not a secret name" in page and 'name="name" value="lower"' in page
    assert value not in page and "paste it again" in page
    empty = post_form(writer_client, "/octo/project/settings/secrets", name="EMPTY", value="")
    assert empty.status_code == 400 and "the value of EMPTY is empty" in text(empty)

    post_form(writer_client, "/octo/project/settings/secrets/API_KEY/remove")
    assert "Secret API_KEY removed." in text(writer_client.get("/octo/project/settings"))
    assert fresh(session).secrets == []


def test_the_forge_token_is_set_and_cleared_but_never_shown(writer_client, session, app):
    assert "Forge token: <strong>not set</strong>" in text(writer_client.get(
        "/octo/project/settings"))
    post_form(writer_client, "/octo/project/settings/forge", token=TOKEN,
              api_url="https://ghe.example.com/api/v3")
    page = text(writer_client.get("/octo/project/settings"))
    assert "Forge token: <strong>set</strong>" in page and TOKEN not in page
    assert "Commit statuses are reported" in page
    repo = fresh(session)
    key = repo_secrets.key(app.extensions["slipway"].settings)
    assert (crypto.decrypt(key, repo.forge_token), repo.api_url) == (
        TOKEN, "https://ghe.example.com/api/v3")
    post_form(writer_client, "/octo/project/settings/forge", token="", api_url="")
    repo = fresh(session)
    assert (crypto.decrypt(key, repo.forge_token), repo.api_url) == (TOKEN, None)
    post_form(writer_client, "/octo/project/settings/forge/clear")
    assert fresh(session).forge_token is None
    assert "Forge token removed" in text(writer_client.get("/octo/project/settings"))


def test_notifications_are_set_from_the_page_and_hook_secrets_shown_once(
        writer_client, session, app):
    settings_page = "/octo/project/settings"
    assert "Nobody is mailed yet." in text(writer_client.get(settings_page))
    refused = post_form(writer_client, f"{settings_page}/notifications/emails",
                        address="not-an-address")
    assert refused.status_code == 400
    assert "'not-an-address' is not an e-mail address" in text(refused)
    assert 'value="not-an-address"' in text(refused)
    added = post_form(writer_client, f"{settings_page}/notifications/emails",
                      address="team@example.com")
    page = text(writer_client.get(added.location))
    assert "team@example.com is mailed when a build fails or is fixed." in page
    assert store.notification_emails(session, fresh(session)) == ["team@example.com"]

    made = post_form(writer_client, f"{settings_page}/notifications/hooks",
                     url="https://chat.example.com/hooks/1", events="failure", secret="")
    page = text(writer_client.get(made.location))
    secret = re.search(r"signed with the secret ([0-9a-f]{40}) \(shown only now\)", page).group(1)
    [hook] = store.notification_hooks(session, fresh(session))
    assert (hook.url, hook.events) == ("https://chat.example.com/hooks/1", "failure")
    key = repo_secrets.key(app.extensions["slipway"].settings)
    assert crypto.decrypt(key, hook.secret) == secret
    assert secret not in text(writer_client.get(settings_page))
    typed = "typed-secret-4321"
    refused = post_form(writer_client, f"{settings_page}/notifications/hooks",
                        url="ftp://files.example.com", events="always", secret=typed)
    assert refused.status_code == 400 and "is not a hook URL" in text(refused)
    assert typed not in text(refused) and "paste it again" in text(refused)

    removed = post_form(writer_client, f"{settings_page}/notifications/hooks/{hook.id}/remove")
    page = text(writer_client.get(removed.location))
    assert f"Hook {hook.id} removed." in page and "No webhooks yet." in page
    removed = post_form(writer_client, f"{settings_page}/notifications/emails/remove",
                        address="team@example.com")
    page = text(writer_client.get(removed.location))
    assert "team@example.com is no longer mailed." in page and "Nobody is mailed yet." in page
    assert store.notification_hooks(session, fresh(session)) == []


# Users and grants --------------------------------------------------------------------------

def test_users_and_grants_from_the_page(admin_client, session, registered, app):
    for fields, message in (
            ({"name": "bob", "password": "long enough!", "password_again": "other one!"},
             "the two passwords differ"),
            ({"name": "bob", "password": "tiny7", "password_again": "tiny7"},
             "the password is shorter than 8 characters"),
            ({"name": "b o b", "password": "long enough!", "password_again": "long enough!"},
             "is not a user name")):
        refused = post_form(admin_client, "/admin/users", admin="on", **fields)
        page = text(refused)
        assert refused.status_code == 400 and message in page, message
        assert f'name="name" value="{fields["name"]}"' in page
        assert 'name="admin" checked' in page and fields["password"] not in page
    added = post_form(admin_client, "/admin/users", name="bob", password="long enough!",
                      password_again="long enough!")
    assert "User bob added." in text(admin_client.get(added.location))
    assert sign_in(app.test_client(), "bob", "long enough!").status_code == 302

    post_form(admin_client, "/admin/grants", user="bob", repo="octo/project",
              permission="write")
    forget(session)
    bob = store.get_user(session, "bob")
    assert store.access_of(session, registered, bob) == "write"
    assert "octo/project" in text(admin_client.get("/admin/users"))
    refused = post_form(admin_client, "/admin/grants", user="bob", repo="octo/nothing",
                        permission="read")
    assert refused.status_code == 400 and "octo/nothing is not registered" in text(refused)
    post_form(admin_client, "/admin/grants/revoke", user="bob", repo="octo/project")
    forget(session)
    assert store.access_of(session, registered, bob) is None

    post_form(admin_client, "/admin/users/bob/admin", admin="yes")
    forget(session)
    assert store.get_user(session, "bob").admin is True
    post_form(admin_client, "/admin/users/bob/admin", admin="no")
    forget(session)
    assert store.get_user(session, "bob").admin is False
    myself = post_form(admin_client, "/admin/users/ada/remove")
    assert "You may not remove yourself here" in text(admin_client.get(myself.location))
    post_form(admin_client, "/admin/users/bob/remove")
    forget(session)
    assert store.get_user(session, "bob") is None and store.get_user(session, "ada")


# Runners and the queue ---------------------------------------------------------------------

def test_the_runners_page_shows_each_worker_what_it_runs_and_if_it_is_alive(
        client, session, registered, redis_client):
    store.update_repo(session, registered, private=True)
    post_hook(client, push_payload("octo/project", SHA))
    queue = Queue(keys.JOBS_QUEUE, connection=redis_client, serializer=keys.RQ_SERIALIZER)
    idle, busy = (SimpleWorker([queue], connection=redis_client, serializer=keys.RQ_SERIALIZER)
                  for _ in range(2))
    idle.register_birth()
    idle.set_state("idle")
    busy.register_birth()
    rq_job = RQJob.fetch(keys.rq_job_id(1, 1), connection=redis_client,
                         serializer=keys.RQ_SERIALIZER)
    busy.prepare_execution(rq_job)
    busy.set_state("busy")
    redis_client.set(keys.lease(1), 1, ex=keys.LEASE_TTL_SECONDS)

    add_user(session, "ada", admin=True)
    add_user(session, "bob")
    sign_in(client, "bob")
    page = text(client.get("/admin/runners"))
    assert idle.name in page and busy.name in page
    assert "2 runner(s); 1 busy." in page and page.count(">alive<") == 2
    assert "a job you may not see" in page and "octo/project" not in page
    sign_in(client, "ada")
    page = text(client.get("/admin/runners"))
    assert 'href="/octo/project/builds/1#job-1">#1 · job 1</a>' in page
    redis_client.delete(keys.lease(1))
    redis_client.hset(busy.key, "last_heartbeat", "2000-01-01T00:00:00.000000Z")
    assert ">not answering<" in text(client.get("/admin/runners"))


def test_the_queue_page_counts_what_waits_and_what_redis_holds(client, session, registered,
                                                               redis_client):
    post_hook(client, push_payload("octo/project", SHA))
    post_hook(client, push_payload("octo/project", "b" * 40))
    add_user(session, "bob")
    sign_in(client, "bob")
    page = text(client.get("/admin/queue"))
    assert cells(page) == [["octo/project", "0", "2", "no limit", "next in line for a runner",
                            "2", "#1 · job 1 queued just now"]]
    assert 'href="/octo/project/builds/1#job-1">#1 · job 1</a>' in page
    redis_client.flushdb()  # Redis lost what it held: RQ's queue and the line
    assert cells(text(client.get("/admin/queue")))[0][2:6] == [
        "2", "no limit", "not in Redis: the reconciler queues it again within seconds", "0"]
    store.update_repo(session, registered, private=True)
    page = text(client.get("/admin/queue"))
    assert "octo/project" not in page and "Nothing is waiting for a runner" in page


def test_without_redis_the_runners_and_queue_pages_say_so(client, session, registered, app):
    post_hook(client, push_payload("octo/project", SHA))
    add_user(session, "bob")
    sign_in(client, "bob")
    resources = app.extensions["slipway"]
    answering = resources.redis
    # Refused at once and not retried: the pages must say so, not wait.
    resources.redis = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1,
                            retry=Retry(NoBackoff(), 0))
    try:
        runners = client.get("/admin/runners")
        queue = text(client.get("/admin/queue"))
    finally:
        resources.redis.close()
        resources.redis = answering
    assert runners.status_code == 200
    assert "Redis, where runners register, does not answer" in text(runners)
    assert "Redis does not answer, so how many jobs it holds is unknown" in queue
    assert cells(queue)[0][:6] == ["octo/project", "0", "1", "no limit", "unknown", "?"]
