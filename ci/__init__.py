"""Slipway's server side. Importing this package loads nothing heavy: runners
import ``ci.pipeline`` without pulling in Flask, SQLAlchemy or the views."""

from __future__ import annotations

from typing import Any, Mapping


def create_app(test_config: Mapping[str, Any] | None = None):
    """The Flask app factory.

    Args:
        test_config: overrides of :class:`ci.settings.Settings` fields (tests use
            this to point at a temporary database and a test Redis).
    """
    from pathlib import Path

    from flask import Flask

    from ci.settings import load_settings
    from ci.views import (
        actions,
        api,
        api_builds,
        assets,
        auth,
        badges,
        errors,
        hooks,
        logs,
        openapi,
        pages,
        resources,
        security,
    )

    settings = load_settings(**dict(test_config or {}))
    app = Flask(__name__, template_folder=str(Path(__file__).parent.parent / "templates"))
    app.config["MAX_CONTENT_LENGTH"] = settings.max_webhook_bytes
    resources.init_app(app, settings)
    if settings.proxy_hops:
        # Behind a proxy, the client's address (sign-in throttling) and the scheme come
        # from X-Forwarded-* — trusted only from as many proxies as configured.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    errors.init_app(app)
    security.init_app(app)  # first: its body check runs before anything reads a body
    assets.init_app(app)
    auth.init_app(app)
    for module in (hooks, openapi, api, api_builds, auth, badges, logs, pages, actions):
        app.register_blueprint(module.bp)
    return app
