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
        admin_queue,
        admin_repos,
        admin_runners,
        admin_settings,
        admin_users,
        api,
        api_builds,
        api_notifications,
        api_schedules,
        artifacts,
        assets,
        attempt_logs,
        auth,
        badges,
        compression,
        errors,
        hooks,
        list_events,
        lists,
        logs,
        metrics,
        openapi,
        pages,
        resources,
        security,
    )
    from ci.views.response_cache import ResponseCache

    settings = load_settings(**dict(test_config or {}))
    app = Flask(__name__, template_folder=str(Path(__file__).parent.parent / "templates"))
    app.config["MAX_CONTENT_LENGTH"] = settings.max_webhook_bytes
    resources.init_app(app, settings)
    # Inside ProxyFix: the answers are kept by the scheme and host the client asked for.
    app.wsgi_app = ResponseCache(app.wsgi_app)
    if settings.proxy_hops:
        # Behind a proxy, the client's address (sign-in throttling) and the scheme come
        # from X-Forwarded-* — trusted only from as many proxies as configured.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    errors.init_app(app)
    security.init_app(app)  # first: its body check runs before anything reads a body
    assets.init_app(app)
    compression.init_app(app)  # after security's hook, so runs before it: its 304s get headers
    auth.init_app(app)
    for module in (hooks, openapi, api, api_builds, api_schedules, api_notifications, auth,
                   badges, logs, artifacts, metrics,
                   attempt_logs, pages,
                   lists, list_events,
                   actions, admin_repos, admin_settings, admin_users, admin_runners,
                   admin_queue):
        app.register_blueprint(module.bp)
    return app
