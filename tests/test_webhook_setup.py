"""Making a repository's webhook through its forge's API: each forge gets the requests its
documentation describes (FORGE_API.md section 6), a hook already delivering to Slipway is
not made twice, and a refusal is told clearly without the token or the secret."""

from __future__ import annotations

import pytest

from ci.forges.webhook_setup import WebhookSetupError, create_webhook
from tests.conftest import free_port
from tests.forge_hooks_server import PATHS, ForgeHooks, serving

TOKEN = "tok-8d2f1c9a77e04b1b"
SECRET = "hook-secret-5f0e3a"
HOOK_URL = "https://ci.example.com/hooks/{forge}"


def make(api: ForgeHooks, api_url: str | None = None):
    return create_webhook(api.forge, api_url or api.url, TOKEN, "acme/widgets",
                          HOOK_URL.format(forge=api.forge), SECRET)


def existing(forge: str, url: str, hook_id: int = 7) -> dict:
    """A listed hook of ``forge`` delivering to ``url``."""
    if forge == "gitlab":
        return {"id": hook_id, "url": url, "push_events": True}
    return {"id": hook_id, "type": "Repository" if forge == "github" else "gitea",
            "config": {"url": url, "content_type": "json"}, "active": True}


def test_github_lists_then_creates_the_documented_hook() -> None:
    with serving(ForgeHooks("github", TOKEN)) as api:
        outcome = make(api)
    assert (outcome.created, outcome.hook_id) == (True, 1)
    listed, made = api.requests
    assert (listed.method, listed.path, listed.query) == (
        "GET", "/repos/acme/widgets/hooks", {"per_page": ["100"], "page": ["1"]})
    for request in (listed, made):
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["Accept"] == "application/vnd.github+json"
        assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"
        assert request.headers["User-Agent"]  # GitHub refuses requests without one
    assert (made.method, made.path) == ("POST", "/repos/acme/widgets/hooks")
    assert made.headers["Content-Type"] == "application/json"
    assert made.body == {"name": "web", "active": True, "events": ["push", "pull_request"],
                         "config": {"url": "https://ci.example.com/hooks/github",
                                    "content_type": "json", "secret": SECRET,
                                    "insecure_ssl": "0"}}


def test_gitlab_names_the_project_by_its_encoded_path_and_sends_a_private_token() -> None:
    with serving(ForgeHooks("gitlab", TOKEN)) as api:
        outcome = make(api)
    assert outcome.created
    listed, made = api.requests
    assert (listed.method, listed.path, listed.query) == (
        "GET", "/projects/acme%2Fwidgets/hooks", {"per_page": ["100"], "page": ["1"]})
    assert (made.method, made.path) == ("POST", "/projects/acme%2Fwidgets/hooks")
    assert made.headers["PRIVATE-TOKEN"] == TOKEN and "Authorization" not in made.headers
    assert made.headers["Content-Type"] == "application/json"
    assert made.body == {"url": "https://ci.example.com/hooks/gitlab", "token": SECRET,
                         "push_events": True, "tag_push_events": True,
                         "merge_requests_events": True, "enable_ssl_verification": True,
                         "push_events_branch_filter": ""}


def test_gitea_sends_type_content_type_and_active_which_defaults_to_false() -> None:
    with serving(ForgeHooks("gitea", TOKEN)) as api:
        outcome = make(api)
    assert outcome.created
    listed, made = api.requests
    assert (listed.method, listed.path, listed.query) == (
        "GET", "/repos/acme/widgets/hooks", {"page": ["1"], "limit": ["50"]})
    assert made.headers["Authorization"] == f"token {TOKEN}"
    assert made.headers["Content-Type"] == "application/json"
    assert made.body == {"type": "gitea", "active": True, "branch_filter": "*",
                         "events": ["push", "pull_request"],
                         "config": {"url": "https://ci.example.com/hooks/gitea",
                                    "content_type": "json", "secret": SECRET}}


@pytest.mark.parametrize("forge", ["github", "gitlab", "gitea"])
def test_a_hook_already_delivering_to_slipway_is_not_made_again(forge: str) -> None:
    others = [existing(forge, "https://chat.example.com/notify", 3),
              existing(forge, HOOK_URL.format(forge=forge) + "/", 7)]
    with serving(ForgeHooks(forge, TOKEN, hooks=others)) as api:
        outcome = make(api)
    assert (outcome.created, outcome.hook_id) == (False, 7)
    assert [request.method for request in api.requests] == ["GET"]
    assert len(api.hooks) == 2


def test_every_page_of_hooks_is_looked_through() -> None:
    many = [existing("github", f"https://other.example.com/{n}", n) for n in range(100)]
    many.append(existing("github", HOOK_URL.format(forge="github"), 500))
    with serving(ForgeHooks("github", TOKEN, hooks=many)) as api:
        outcome = make(api)
    assert (outcome.created, outcome.hook_id) == (False, 500)
    assert [request.query["page"] for request in api.requests] == [["1"], ["2"]]
    assert all(request.method == "GET" for request in api.requests)


def test_github_refusing_a_duplicate_counts_as_already_there() -> None:
    # Made a moment ago by another client: not listed yet, refused on create (422).
    hook = existing("github", HOOK_URL.format(forge="github"))
    with serving(ForgeHooks("github", TOKEN, hooks=[hook], unlisted=True)) as api:
        outcome = make(api)
    assert outcome.created is False
    assert [request.method for request in api.requests] == ["GET", "POST"]
    assert len(api.hooks) == 1


@pytest.mark.parametrize(("status", "hint"), [
    (401, "did not accept the token"),
    (403, "may not manage this repository's webhooks"),
    (404, "does not know this repository"),
])
def test_a_refusal_is_told_with_what_to_do_and_without_the_token(status: int, hint: str) -> None:
    refusal = (status, {"message": f"Bad credentials for {TOKEN} and {SECRET}"})
    with serving(ForgeHooks("github", TOKEN, refusal=refusal)) as api:
        with pytest.raises(WebhookSetupError) as raised:
            make(api)
    message = str(raised.value)
    assert f"GitHub answered {status} to GET {api.url}{PATHS['github']}" in message
    assert hint in message and "Bad credentials for [hidden] and [hidden]" in message
    assert TOKEN not in message and SECRET not in message


def test_a_validation_error_on_create_quotes_the_forge() -> None:
    refused = (422, {"message": "Invalid url given"})
    with serving(ForgeHooks("gitlab", TOKEN, create_refusal=refused)) as api:
        with pytest.raises(WebhookSetupError) as raised:
            make(api)
    assert str(raised.value) == (f"GitLab answered 422 to POST {api.url}/projects/acme%2Fwidgets"
                                 "/hooks: Invalid url given")


def test_a_forge_that_does_not_answer_is_named_without_credentials() -> None:
    closed = f"http://someone:{TOKEN}@127.0.0.1:{free_port()}/api/v1"
    with pytest.raises(WebhookSetupError) as raised:
        create_webhook("gitea", closed, TOKEN, "acme/widgets", "https://ci.example.com/hooks/gitea",
                       SECRET)
    message = str(raised.value)
    assert message.startswith("Gitea at http://127.0.0.1:") and "did not answer" in message
    assert TOKEN not in message and "someone" not in message


def test_gitea_needs_an_api_url() -> None:
    with pytest.raises(WebhookSetupError, match="gitea has no default API URL"):
        create_webhook("gitea", None, TOKEN, "acme/widgets", "https://ci.example.com/hooks/gitea",
                       SECRET)
