"""Prometheus histograms kept in Redis, so that every process on every host adds to one series.

A histogram kept in a process's memory would be one series per gunicorn worker, each
scrape answered by whichever worker the request reaches: counts that jump back and forth.
Here each observation is one transaction (``MULTI``/``EXEC``, one round trip) on one hash:
the observation's bucket, the sum and the count. A scrape reads the hash (``HGETALL``) and
adds the buckets up; as the three move together, the buckets never exceed the count.

Fields are ``LABEL|BOUND`` for a bucket, ``LABEL|sum`` and ``LABEL|count``, ``LABEL`` being
one label value (a status) or empty. A bucket counts the observations above the bound
below it, so that an observation touches one field; the reader makes them cumulative.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.utils import floatToGoString
from redis import Redis

SUM = "sum"
COUNT = "count"
INF = "+Inf"


@dataclass(frozen=True)
class Snapshot:
    """One label value's histogram as Prometheus wants it: cumulative buckets, and the sum."""

    #: ``(upper bound, observations at or below it)``, the last one ``+Inf`` (the count).
    buckets: list[tuple[str, float]]
    sum: float


@dataclass(frozen=True)
class RedisHistogram:
    """The buckets of one histogram, in one Redis hash at ``key``."""

    key: str
    #: Upper bounds, in seconds, ascending; ``+Inf`` is implied.
    bounds: tuple[float, ...]

    def observe(self, redis: Redis, value: float, label: str = "") -> None:
        """Add one observation of ``value`` (for one label value), in one round trip.

        Raises:
            redis.exceptions.RedisError: Redis does not answer.
        """
        bound = next((bound for bound in self.bounds if value <= bound), None)
        with redis.pipeline(transaction=True) as pipe:
            if bound is not None:
                pipe.hincrby(self.key, f"{label}|{floatToGoString(bound)}", 1)
            pipe.hincrbyfloat(self.key, f"{label}|{SUM}", value)
            pipe.hincrby(self.key, f"{label}|{COUNT}", 1)
            pipe.execute()

    def read(self, redis: Redis) -> dict[str, Snapshot]:
        """Every label value observed so far, with its histogram.

        Raises:
            redis.exceptions.RedisError: Redis does not answer.
        """
        fields: dict[str, dict[str, float]] = {}
        for name, value in redis.hgetall(self.key).items():
            label, _, part = name.decode().rpartition("|")
            fields.setdefault(label, {})[part] = float(value)
        return {label: self._snapshot(parts) for label, parts in fields.items()}

    def empty(self) -> Snapshot:
        """The histogram before its first observation: every bucket at zero."""
        return self._snapshot({})

    def _snapshot(self, parts: dict[str, float]) -> Snapshot:
        buckets, total = [], 0.0
        for bound in map(floatToGoString, self.bounds):
            total += parts.get(bound, 0.0)
            buckets.append((bound, total))
        buckets.append((INF, parts.get(COUNT, 0.0)))
        return Snapshot(buckets=buckets, sum=parts.get(SUM, 0.0))
