"""Signature checking against published vectors and the recorded deliveries."""

import json

import pytest

from ci.forges.signatures import hmac_sha256_hex, verify_github_signature
from tests.conftest import FIXTURES, GITHUB, SECRET

VECTORS = json.loads((FIXTURES / "webhooks" / "SIGNATURE_VECTORS.json").read_text())
GITHUB_VECTORS = [v for v in VECTORS if v["forge"] == "github"]


@pytest.mark.parametrize("vector", GITHUB_VECTORS, ids=lambda v: v["secret"])
def test_published_github_vectors(vector):
    if "payload_file" in vector:
        body = (FIXTURES / "webhooks" / vector["payload_file"]).read_bytes()
    else:
        body = vector["payload"].encode()
    assert verify_github_signature(vector["secret"], body, vector["value"])


@pytest.mark.parametrize("name", ["push.branch", "pull_request.synchronize", "ping", "push.tag"])
def test_recorded_deliveries_verify_over_exact_bytes(name):
    body = (GITHUB / f"{name}.json").read_bytes()
    headers = json.loads((GITHUB / f"{name}.headers.json").read_text())
    assert verify_github_signature(SECRET, body, headers["X-Hub-Signature-256"])
    # Re-serialising the JSON changes the bytes, and so the signature no longer matches.
    reserialised = json.dumps(json.loads(body)).encode()
    assert not verify_github_signature(SECRET, reserialised, headers["X-Hub-Signature-256"])


@pytest.mark.parametrize("header", [None, "", "sha1=abc", "sha256=", "sha256=zz",
                                    "sha256=" + "0" * 64, "sha256=" + "é" * 64])
def test_bad_headers_are_rejected_without_raising(header):
    assert not verify_github_signature(SECRET, b"{}", header)


def test_wrong_secret_is_rejected():
    body = b'{"zen": "Keep it logically awesome."}'
    header = "sha256=" + hmac_sha256_hex("another secret", body)
    assert not verify_github_signature(SECRET, body, header)
    assert verify_github_signature("another secret", body, header)


def test_empty_secret_never_verifies():
    body = b"{}"
    assert not verify_github_signature("", body, "sha256=" + hmac_sha256_hex("", body))
