"""Webhook signature checks: HMAC of the raw request body, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac


def hmac_sha256_hex(secret: str, body: bytes) -> str:
    """The lowercase hex HMAC-SHA256 of ``body`` keyed with ``secret`` (UTF-8)."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_github_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Check GitHub's ``X-Hub-Signature-256: sha256=<hex>`` header against ``body``.

    Returns False for a missing, malformed or wrong header; never raises.
    """
    if not header or not secret or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac_sha256_hex(secret, body)
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("ascii", "replace"))


def verify_hex_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Check a bare hex HMAC-SHA256 header (Gitea, Forgejo, Gogs) against ``body``.

    Returns False for a missing or wrong header; never raises.
    """
    if not header or not secret:
        return False
    expected = hmac_sha256_hex(secret, body)
    return hmac.compare_digest(expected.encode("ascii"),
                               header.strip().lower().encode("ascii", "replace"))


def verify_token(secret: str, header: str | None) -> bool:
    """Check a header that carries the secret itself (GitLab's ``X-Gitlab-Token``).

    Compared in constant time, so the time taken tells nothing about the secret.
    """
    if not header or not secret:
        return False
    return hmac.compare_digest(secret.encode("utf-8"), header.encode("utf-8"))
