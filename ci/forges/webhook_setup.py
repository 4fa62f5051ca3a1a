"""Making a repository's webhook on its forge through the forge's API, for the page that
adds a repository, so nobody has to copy a URL and a secret into the forge by hand.

The repository's hooks are listed first: a hook that already delivers to Slipway's URL is
left as it is rather than made twice (only GitHub refuses a duplicate; GitLab and Gitea
would deliver every push twice). Then one hook is created, for pushes (branches and tags)
and pull or merge requests, signed with the repository's webhook secret:

- GitHub: ``GET``/``POST {api}/repos/{owner}/{repo}/hooks``, ``Authorization: Bearer``;
- GitLab: ``GET``/``POST {api}/projects/{owner%2Fname}/hooks``, ``PRIVATE-TOKEN``;
- Gitea, Forgejo, Gogs: ``GET``/``POST {api}/repos/{owner}/{repo}/hooks``,
  ``Authorization: token``; ``active`` must be sent, as it defaults to false there.

A failure is a :class:`WebhookSetupError` whose message may be shown as it is: it names
the forge, the URL asked (without credentials) and what the forge answered, with the
token and the secret blanked out wherever the forge echoed them.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import quote, urlsplit, urlunsplit

from ci import forges
from ci.forges.api_client import OPENER

HTTP_TIMEOUT_SECONDS = 10
#: Hooks listed at most (pages of the forge's largest size); a repository has a handful.
MAX_PAGES = 10
#: The most of an answer read: a page of hooks is some kilobytes each.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
#: What a forge's answer may add to a message, at most.
DETAIL_CHARACTERS = 300
_NEXT_LINK = re.compile(r'<[^>]*>\s*;[^,]*rel="?next"?', re.IGNORECASE)
#: What each refusal usually means, to say what to do about it.
HINTS = {
    401: "the forge did not accept the token",
    403: "the token may not manage this repository's webhooks (it needs admin rights on "
         "the repository and a scope that allows webhooks)",
    404: "the forge does not know this repository at this API URL, or the token cannot "
         "see it",
}


class WebhookSetupError(RuntimeError):
    """The forge did not make the webhook; the message says why, without credentials."""


@dataclass(frozen=True)
class HookOutcome:
    """What was done on the forge: a hook made, or one with Slipway's URL already there."""

    created: bool
    #: The forge's id of the hook made or found, when it said.
    hook_id: Any = None


@dataclass(frozen=True)
class HookApi:
    """How one forge lists and creates a repository's hooks."""

    #: The forge's name for people.
    label: str
    #: The repository's hooks collection: listed with ``GET``, a hook made with ``POST``.
    hooks_url: str
    headers: dict[str, str]
    #: The body of the ``POST`` that makes the hook.
    body: dict[str, Any]
    #: The query string of one page of the listing.
    page_query: Callable[[int], str]
    page_size: int
    #: Where a listed hook keeps the URL it delivers to.
    delivery_url: Callable[[dict[str, Any]], Any]


def _github(api: str, token: str, repo: str, url: str, secret: str) -> HookApi:
    return HookApi(
        label="GitHub", hooks_url=f"{api}/repos/{repo}/hooks",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                 "X-GitHub-Api-Version": "2022-11-28"},
        body={"name": "web", "active": True, "events": ["push", "pull_request"],
              "config": {"url": url, "content_type": "json", "secret": secret,
                         "insecure_ssl": "0"}},
        page_query=lambda page: f"per_page=100&page={page}", page_size=100,
        delivery_url=lambda hook: (hook.get("config") or {}).get("url"),
    )


def _gitlab(api: str, token: str, repo: str, url: str, secret: str) -> HookApi:
    return HookApi(
        label="GitLab", hooks_url=f"{api}/projects/{quote(repo, safe='')}/hooks",
        headers={"PRIVATE-TOKEN": token, "Accept": "application/json"},
        body={"url": url, "token": secret, "push_events": True, "tag_push_events": True,
              "merge_requests_events": True, "enable_ssl_verification": True,
              "push_events_branch_filter": ""},
        page_query=lambda page: f"per_page=100&page={page}", page_size=100,
        delivery_url=lambda hook: hook.get("url"),
    )


def _gitea(api: str, token: str, repo: str, url: str, secret: str) -> HookApi:
    return HookApi(
        label="Gitea", hooks_url=f"{api}/repos/{repo}/hooks",
        headers={"Authorization": f"token {token}", "Accept": "application/json"},
        body={"type": "gitea", "active": True, "branch_filter": "*",
              "events": ["push", "pull_request"],
              "config": {"url": url, "content_type": "json", "secret": secret}},
        page_query=lambda page: f"page={page}&limit=50", page_size=50,
        # Forgejo also names it at the top level, where it deprecated ``config``.
        delivery_url=lambda hook: (hook.get("config") or {}).get("url") or hook.get("url"),
    )


APIS: dict[str, Callable[[str, str, str, str, str], HookApi]] = {
    "github": _github, "gitlab": _gitlab, "gitea": _gitea,
}


def create_webhook(forge: str, api_url: str | None, token: str, repo: str, hook_url: str,
                   secret: str) -> HookOutcome:
    """Make ``repo``'s webhook to ``hook_url`` on its forge, unless one is there already.

    Args:
        forge: what the repository is registered as (``github``, ``gitlab``, ``gitea``).
        api_url: the forge's API base, e.g. ``https://gitea.example.com/api/v1``; None:
            the forge's default (Gitea has none).
        token: a token allowed to manage the repository's webhooks.
        repo: ``owner/name`` on the forge.
        hook_url: where the forge is to deliver, Slipway's ``…/hooks/<forge>``.
        secret: the webhook secret the deliveries are signed (or, on GitLab, sent) with.

    Raises:
        WebhookSetupError: the forge could not be asked or refused; nothing was made.
    """
    known = forges.get(forge)
    if forge not in APIS or known is None:
        raise WebhookSetupError(f"Slipway cannot make webhooks on {forge!r}")
    base = api_url or known.DEFAULT_API_URL
    if not base:
        raise WebhookSetupError(f"{known.NAME} has no default API URL; give the forge's API "
                                "URL, e.g. https://gitea.example.com/api/v1")
    api = APIS[forge](base.rstrip("/"), token, repo, hook_url, secret)
    client = _Client(api, (token, secret))
    existing = client.find(hook_url)
    if existing is not None:
        return HookOutcome(created=False, hook_id=existing.get("id"))
    return client.create()


class _Client:
    """Talks to one forge about one hook; ``hidden`` (the token and the secret) is blanked
    out of whatever of the forge's answers it reports."""

    def __init__(self, api: HookApi, hidden: tuple[str, ...]) -> None:
        self.api = api
        self.hidden = [value for value in hidden if value]

    def find(self, hook_url: str) -> dict[str, Any] | None:
        """The listed hook that delivers to ``hook_url``, or None."""
        for page in range(1, MAX_PAGES + 1):
            url = f"{self.api.hooks_url}?{self.api.page_query(page)}"
            status, headers, hooks = self._call("GET", url)
            if status != 200:
                raise self._error("GET", url, status, _message_of(hooks))
            if not isinstance(hooks, list):
                raise self._error("GET", url, status, "that is not a list of hooks")
            for hook in hooks:
                if isinstance(hook, dict) and _same_url(self.api.delivery_url(hook), hook_url):
                    return hook
            more = _NEXT_LINK.search(headers.get("Link") or "") is not None
            if not more and len(hooks) < self.api.page_size:
                return None
        return None

    def create(self) -> HookOutcome:
        status, _headers, made = self._call("POST", self.api.hooks_url, self.api.body)
        if 200 <= status < 300:
            return HookOutcome(created=True,
                               hook_id=made.get("id") if isinstance(made, dict) else None)
        if status == 422 and "already exists" in json.dumps(made).lower():
            # GitHub's answer to a duplicate the listing missed (made a moment ago).
            return HookOutcome(created=False)
        raise self._error("POST", self.api.hooks_url, status, _message_of(made))

    def _call(self, method: str, url: str,
              body: dict[str, Any] | None = None) -> tuple[int, Any, Any]:
        """(status, headers, parsed JSON or the text) of one request; a status ≥ 300 too."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {**self.api.headers, "User-Agent": "Slipway"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            request = urllib.request.Request(url, data=data, method=method, headers=headers)
            with OPENER.open(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
                return (response.status, response.headers,
                        _parsed(response.read(MAX_ANSWER_BYTES)))
        except urllib.error.HTTPError as exc:
            with exc:
                if exc.code < 400:
                    raise self._error(method, url, exc.code, "it redirected to "
                                      f"{_shown(exc.headers.get('Location') or '')}, where the "
                                      "token is not sent; give the API URL it redirects to")
                return exc.code, exc.headers, _parsed(exc.read(64 * 1024))
        except OSError as exc:
            raise WebhookSetupError(f"{self.api.label} at {_shown(url)} did not answer: "
                                    f"{getattr(exc, 'reason', exc)}") from None
        except (ValueError, http.client.InvalidURL):
            raise WebhookSetupError(f"{_shown(url)} is not a URL the {self.api.label} API can "
                                    "be asked at; check the API URL") from None
        except http.client.HTTPException as exc:
            raise WebhookSetupError(f"{self.api.label} at {_shown(url)} did not answer as a "
                                    f"web server does ({type(exc).__name__})") from None

    def _error(self, method: str, url: str, status: int, detail: str) -> WebhookSetupError:
        hint = HINTS.get(status)
        text = f"{self.api.label} answered {status} to {method} {_shown(url)}"
        text += f" ({hint})" if hint else ""
        return WebhookSetupError(f"{text}: {self._hide(detail)}" if detail else text)

    def _hide(self, text: str) -> str:
        """What the forge said, with the token and the secret blanked out wherever it
        echoed them (the rest of a message is Slipway's, its URLs without credentials)."""
        for value in self.hidden:
            text = text.replace(value, "[hidden]")
        return text


def _parsed(raw: bytes) -> Any:
    """JSON as data; anything else as its text, for the message."""
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _message_of(answer: Any) -> str:
    """What a forge's error body says: its ``message`` (GitHub and Gitea), its ``error``
    or ``message`` object (GitLab), and GitHub's ``errors[].message``."""
    if isinstance(answer, dict):
        parts = [answer.get("message"), answer.get("error")]
        parts += [item.get("message") for item in answer.get("errors") or []
                  if isinstance(item, dict)]
        text = "; ".join(part if isinstance(part, str) else json.dumps(part)
                         for part in parts if part)
    else:
        text = str(answer or "").strip()
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_CHARACTERS else text[:DETAIL_CHARACTERS - 1] + "…"


def _same_url(listed: Any, wanted: str) -> bool:
    return isinstance(listed, str) and listed.rstrip("/") == wanted.rstrip("/")


def _shown(url: str) -> str:
    """``url`` without user name and password."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=host))
    except ValueError:
        return "the API URL"


