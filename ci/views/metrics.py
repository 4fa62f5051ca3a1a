"""``GET /metrics``: Slipway's state in Prometheus's text format, for an operator's scraper.

Open by default, like most exporters; with ``SLIPWAY_METRICS_TOKEN`` set it answers only
requests carrying ``Authorization: Bearer`` with that token. It answers 200 whatever is
down: ``slipway_up`` then says which component could not be read (``ci.builds.metrics``).
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, request
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from ci.builds.metrics import SlipwayCollector
from ci.views.auth import unauthorized
from ci.views.resources import redis, session, settings

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    """The metrics, in the format the scraper accepts (Prometheus's text format unless it
    asks for OpenMetrics), never cached: each scrape reads the present."""
    token = settings().metrics_token
    if token and not _bearer_matches(token):
        raise unauthorized("send the metrics token (SLIPWAY_METRICS_TOKEN) as "
                           "`Authorization: Bearer TOKEN`")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SlipwayCollector(session(), redis()))
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(registry), content_type=content_type,
                    headers={"Cache-Control": "no-store"})


def _bearer_matches(token: str) -> bool:
    """Whether the request carries ``token``, compared in constant time so that timing the
    answers does not reveal how much of a guess was right."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())
