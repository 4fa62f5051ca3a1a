"""Webhook ingest on the real path: signed pushes that queue builds (no ``[skip ci]``),
from 8 clients at once, on SQLite and on PostgreSQL, against the server floor's POST rate.

The stacks run without runner workers, so the builds stay queued and the machine's CPUs
stay with the web server; every webhook must be answered 202 and recorded as a build.
"""

from __future__ import annotations

from collections import Counter

from ci.builds import timings
from tests.bench import floors
from tests.bench.client import rate_rounds
from tests.bench.common import free_port
from tests.bench.context import Context, Result
from tests.bench.procstat import CpuMeter, describe
from tests.bench.stack import Stack
from tests.bench.table import Figure, Target, median
from tests.databases import LocalServer

TARGET = 0.6
WEBHOOKS = 500


def view_time(stack: Stack) -> tuple[float, int]:
    """The webhook view's own timing so far (``slipway_webhook_duration_seconds``, kept in
    Redis by ``ci.builds.timings``): seconds in all, and webhooks timed."""
    fields = stack.redis.hgetall(timings.WEBHOOKS.key)
    total = sum(float(value) for name, value in fields.items() if name.endswith(b"|sum"))
    count = sum(int(value) for name, value in fields.items() if name.endswith(b"|count"))
    return total, count


def ingest(stack: Stack, database: str, ctx: Context, result: Result) -> None:
    """Rounds of signed pushes; the rate, lost answers and lost builds per round."""
    floor = floors.servers(ctx)
    sha = ctx.repo.head
    before = stack.api("/builds?per_page=1")["total"]
    spent: Counter[str] = Counter()  # over the webhooks' rounds only, not the floor's
    view_before = view_time(stack)

    def webhooks(label: str) -> list[bytes]:
        return floors.webhooks(stack.port, sha, f"ingest {database} {label}", WEBHOOKS)

    rates, lost, floor_rates = [], [], []
    with floors.FloorServer(ctx) as floor_server:
        rate_rounds(stack.port, webhooks, 0, floors.CLIENTS, 202, floors.WARM_UP)
        for number in range(floors.ROUNDS):  # a floor round, then one of the webhooks
            floor_rates += floor_server.posts()
            meter = CpuMeter(stack.processes.sessions())
            rate, missed = rate_rounds(stack.port, lambda label: webhooks(f"{number} {label}"),
                                       1, floors.CLIENTS, 202, 0)
            spent.update(meter.spent())
            rates += rate
            lost += missed
    sent = WEBHOOKS * floors.ROUNDS + floors.WARM_UP
    timed_rounds = WEBHOOKS * floors.ROUNDS
    view_after = view_time(stack)
    recorded = stack.api("/builds?per_page=1")["total"] - before
    stack.processes.check()
    result.figures += [
        Figure(f"ingest, {database}: webhooks answered 202, 8 clients", "req/s", rates,
               Target(">=", TARGET, of_floor=True), median(floor_rates)),
        Figure(f"ingest, {database}: webhooks not answered 202", "count", lost,
               Target("<=", 0), worst=True),
        Figure(f"ingest, {database}: webhooks sent but no build recorded", "count",
               [sent - recorded], Target("<=", 0), worst=True),
    ]
    timed = view_after[1] - view_before[1]
    in_view = (view_after[0] - view_before[0]) / timed * 1000 if timed else 0.0
    result.breakdown += [
        f"ingest on {database}: " + describe(spent, timed_rounds, "webhook")
        + f"; the web's is {spent['web'] * 1000 / timed_rounds / floor.post_cpu_ms:.1f}x the "
        f"floor's {floor.post_cpu_ms:.2f} ms; the floor's POST rounds taken between these: "
        + ", ".join(f"{rate:.0f}" for rate in floor_rates),
        f"ingest on {database}: the webhook view's own timing (from its first hook to the "
        f"answer, wall clock, {floors.CLIENTS} at a time on the web workers): {in_view:.1f} ms "
        f"mean over {timed} webhooks",
    ]


def measure(ctx: Context, result: Result) -> None:
    """PostgreSQL first, then SQLite, whose stack the badge section goes on to use."""
    postgres = LocalServer(free_port())
    url = postgres.start()
    try:
        ingest(ctx.stack("postgresql", database_url=url), "PostgreSQL", ctx, result)
        ctx.close()
    finally:
        postgres.stop()
    ingest(ctx.stack("queued"), "SQLite", ctx, result)


METHOD = f"""\
- **ingest**: the stack runs without runner workers (builds stay queued). An untimed
  warm-up of {floors.WARM_UP} webhooks, then {floors.ROUNDS} rounds of {WEBHOOKS} GitHub
  push webhooks (the recorded `push.branch.json` pointed at the repository's HEAD, an
  ordinary message, so each queues a build), each with its own delivery id and
  `X-Hub-Signature-256`, built and signed before the clock starts, sent to
  `POST /hooks/github` exactly as the server floor's POSTs ({floors.CLIENTS} at a time, a
  connection each). Rate = answers 202 / time from the first connection to the last
  answer. Each round follows a round of the server floor's POSTs, taken then; the
  ratio's floor is their median. "No build recorded" = webhooks sent (warm-up included)
  minus the growth of `total` in `GET /api/repos/bench/tiny/builds?per_page=1`. Run
  first on PostgreSQL (a private server: `initdb` and `pg_ctl` in a temporary directory,
  durability off as in the tests, `SLIPWAY_DATABASE_URL` pointing at it, `slipway db
  upgrade`), then on SQLite (the default, a file in the data directory).
"""
