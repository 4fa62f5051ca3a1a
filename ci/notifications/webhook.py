"""Outgoing webhooks: one signed JSON POST to a URL a repository chose.

The signature is GitHub's scheme, so receivers can reuse their verification code:
``X-Slipway-Signature-256: sha256=<hex HMAC-SHA256 of the body, keyed with the hook's
secret>``. Redirects are not followed (``ci.forges.api_client``): a hook's URL is the one
place its deliveries go. No answer, a 5xx or a 429 is worth trying again; any other
refusal is final.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from ci.forges.api_client import OPENER

HTTP_TIMEOUT_SECONDS = 10
SIGNATURE_HEADER = "X-Slipway-Signature-256"


class HookUnavailable(RuntimeError):
    """The receiver did not take the delivery now (no answer, 5xx, 429); try again later."""


def signature(secret: str, body: bytes) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(url: str, secret: str, delivery: str, body: str) -> int:
    """POST ``body`` (JSON) to ``url``, signed; returns the HTTP status of an answer that
    is final: a 2xx, or a refusal (3xx, 4xx other than 429).

    Raises:
        HookUnavailable: worth trying again later.
    """
    data = body.encode()
    host = urlsplit(url).hostname  # named in errors: a URL's path may be its secret (Slack's)
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "Slipway",
        "X-Slipway-Event": "build", "X-Slipway-Delivery": delivery,
        SIGNATURE_HEADER: signature(secret, data)})
    try:
        with OPENER.open(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code >= 500 or exc.code == 429:
            raise HookUnavailable(f"{host} answered {exc.code}") from None
        return exc.code
    except (OSError, http.client.HTTPException) as exc:
        raise HookUnavailable(f"{host} did not answer: {exc}") from None
