"""Fingerprinted static assets: URLs carry a content hash, so browsers cache them for a year."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from flask import Flask, url_for

STATIC = Path(__file__).parent.parent / "static"
ONE_YEAR = 365 * 24 * 3600


@lru_cache(maxsize=None)
def _fingerprint(name: str) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


def asset_url(name: str) -> str:
    return url_for("static", filename=name, v=_fingerprint(name))


def init_app(app: Flask) -> None:
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = ONE_YEAR
    app.add_template_global(asset_url)
