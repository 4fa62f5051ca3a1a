"""Times the webhook view for the ``slipway_webhook_duration_seconds`` histogram.

The time is added to Redis (``ci.builds.timings``) once the answer has been sent, when
the server closes the response: the forge is not kept waiting for the metric, and a Redis
that does not answer costs the webhook nothing more than it already did.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, g
from redis import Redis
from redis.exceptions import RedisError

from ci.builds import timings
from ci.views.resources import redis

log = logging.getLogger(__name__)


def time_requests(bp: Blueprint) -> None:
    """Time every request the views of ``bp`` answer, from their first hook to the answer."""
    bp.before_request(_start)
    bp.after_request(_stop)


def _start() -> None:
    g.webhook_started = time.perf_counter()


def _stop(response: Response) -> Response:
    started = g.pop("webhook_started", None)
    if started is not None:
        seconds = time.perf_counter() - started
        client = redis()
        response.call_on_close(lambda: _observe(client, seconds))
    return response


def _observe(client: Redis, seconds: float) -> None:
    try:
        timings.WEBHOOKS.observe(client, seconds)
    except RedisError as exc:
        log.warning("webhook time not counted, Redis does not answer: %s", exc)
