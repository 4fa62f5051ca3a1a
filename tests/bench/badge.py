"""The badge, as READMEs and image proxies fetch it: plain GETs, and revalidations with
``If-None-Match`` that should cost a 304 and little else, against the server floor's GET.
"""

from __future__ import annotations

from collections import Counter

from tests.bench import floors
from tests.bench.client import raw_request, rate_rounds
from tests.bench.common import BenchError
from tests.bench.context import Context, Result
from tests.bench.procstat import CpuMeter, describe
from tests.bench.table import Figure, Target, median

GET_TARGET = 0.7
NOT_MODIFIED_TARGET = 0.8


def measure(ctx: Context, result: Result) -> None:
    """GET rounds, then conditional-GET rounds, on the queued stack (one build at least)."""
    stack = ctx.stack("queued")
    stack.push()
    floor = floors.servers(ctx)
    url = stack.base + floors.BADGE_PATH
    etag = stack.http.get(url, timeout=10).headers.get("ETag")
    if not etag:
        raise BenchError("the badge carries no ETag")
    port, path = stack.port, floors.BADGE_PATH
    sent = floors.REQUESTS * floors.ROUNDS
    with floors.FloorServer(ctx) as floor_server:
        for label, headers, status, target in (
                ("badge: GET answered 200", {}, 200, GET_TARGET),
                ("badge: If-None-Match answered 304", {"If-None-Match": etag}, 304,
                 NOT_MODIFIED_TARGET)):
            spent: Counter[str] = Counter()  # over the badge's rounds only, not the floor's
            request = raw_request(port, "GET", path, headers=headers)
            rate_rounds(port, lambda _label: [request], 0, floors.CLIENTS, status,
                        floors.WARM_UP)
            rates, lost, floor_rates = [], [], []
            for _ in range(floors.ROUNDS):  # a floor round, then one of the badge's
                floor_rates += floor_server.gets()
                meter = CpuMeter(stack.processes.sessions())
                rate, missed = rate_rounds(port, lambda _label: [request] * floors.REQUESTS,
                                           1, floors.CLIENTS, status, 0)
                spent.update(meter.spent())
                rates += rate
                lost += missed
            result.figures += [
                Figure(f"{label}, 8 clients", "req/s", rates,
                       Target(">=", target, of_floor=True), median(floor_rates)),
                Figure(f"{label}: other answers", "count", lost, Target("<=", 0), worst=True),
            ]
            result.breakdown.append(
                f"{label}: " + describe(spent, sent, "request") + f"; the web's is "
                f"{spent['web'] * 1000 / sent / floor.get_cpu_ms:.1f}x the floor's "
                f"{floor.get_cpu_ms:.2f} ms; the floor's GET rounds taken between these: "
                + ", ".join(f"{rate:.0f}" for rate in floor_rates))
    stack.processes.check()


METHOD = f"""\
- **badge**: on the ingest's SQLite stack (its builds queued), `GET {floors.BADGE_PATH}`
  sent exactly as the server floor's GETs: {floors.ROUNDS} rounds of {floors.REQUESTS}
  after a warm-up, {floors.CLIENTS} at a time; then the same with `If-None-Match` set to
  the badge's ETag, counting 304 answers. Each round follows a round of the server
  floor's GETs, taken then (the floor's gunicorn runs beside the stack, idle between its
  rounds); the ratio's floor is their median, and the breakdown shows them.
"""
