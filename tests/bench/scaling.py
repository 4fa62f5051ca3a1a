"""The bench's scaling figure: the same builds on one runner host and on three.

Runner hosts are network namespaces of this machine (:mod:`tests.deployment`): a db
host (Redis, PostgreSQL), one web host (web, recorder, reporter) and three runner
hosts of ``slipway worker --count 2`` each, sharing this machine's Docker engine.
Builds whose only step sleeps run first with one runner host working, then again
with all three. A step that sleeps leaves the machine's CPUs to Slipway, so the figure
shows what adding runner hosts gives, not what the machine can compute.
"""

from __future__ import annotations

import time

from tests.bench.common import IMAGE
from tests.bench.context import Context, Result
from tests.bench.table import Figure, Target, median
from tests.deployment import Deployment, pipeline
from tests.topology import TopologyError, unavailable

BUILDS = 18
ROUNDS = 3
SLEEP = 2
STEP = f"sleep {SLEEP}"
SLOTS = 2
HOSTS = 3
TARGET = 2.7
BUILD_SECONDS = 600


def run_builds(deployment: Deployment, sha: str, count: int) -> float:
    """Send ``count`` webhooks of ``sha``; seconds until all their builds passed."""
    began = time.perf_counter()
    numbers = []
    for _ in range(count):
        response = deployment.push(deployment.webs[0], sha)
        if response.status_code != 202:
            raise AssertionError(f"webhook answered {response.status_code}: {response.text}")
        numbers.append(response.json()["build"]["number"])
    builds = deployment.wait_finished(numbers, timeout=BUILD_SECONDS)
    elapsed = time.perf_counter() - began
    failed = {number: build["status"] for number, build in builds.items()
              if build["status"] != "passed"}
    if failed:
        raise AssertionError(f"builds did not pass: {failed}")
    return elapsed


def measure(ctx: Context, result: Result) -> None:
    """:data:`BUILDS` builds on one runner host, then on :data:`HOSTS`; or say why the
    figure cannot be taken here (no network namespaces: not root, no ``ip netns``)."""
    ctx.close()
    why = unavailable()
    if why:
        result.error = why
        return
    try:
        with Deployment(IMAGE, web=1, runners=HOSTS, slots=SLOTS,
                        start_runners=["runner-1"]) as deployment:
            sha = deployment.repository.commit(pipeline(STEP, IMAGE))
            run_builds(deployment, sha, SLOTS)  # warm-up: the mirror cache, the image
            one_host = [run_builds(deployment, sha, BUILDS) for _ in range(ROUNDS)]
            for host in deployment.runners[1:]:
                deployment.start_runner(host)
            all_hosts = [run_builds(deployment, sha, BUILDS) for _ in range(ROUNDS)]
    except (AssertionError, TopologyError) as exc:
        result.error = f"failed: {exc}"
        return
    what = f"{BUILDS} builds of a `{STEP}` step"
    result.figures += [
        Figure(f"scaling: {what}, 1 runner host x {SLOTS} slots", "s", one_host, digits=1),
        Figure(f"scaling: {what}, {HOSTS} runner hosts x {SLOTS} slots", "s", all_hosts,
               digits=1),
        Figure(f"scaling: {HOSTS} hosts vs 1 host (speed-up, round by round)", "x",
               [one / many for one, many in zip(one_host, all_hosts)], Target(">=", TARGET),
               digits=2),
    ]
    for hosts, times in ((1, one_host), (HOSTS, all_hosts)):
        slots = hosts * SLOTS
        result.breakdown.append(
            f"scaling, {hosts} host(s): {BUILDS} builds x {SLEEP} s of sleep on {slots} slots "
            f"take at least {BUILDS * SLEEP / slots:.0f} s; the median round took "
            f"{median(times):.1f} s, so each build held a slot "
            f"{median(times) * slots / BUILDS - SLEEP:.1f} s outside its step")


METHOD = f"""\
- **scaling**: hosts made as network namespaces of this machine on a bridge of their
  own: a db host (`redis-server` with a password and `appendonly yes`, PostgreSQL), a
  web host (the Procfile's web, recorder and reporter lines) and {HOSTS} runner hosts
  (the Procfile's worker line, `SLIPWAY_RUNNERS={SLOTS}`, each with its own
  `SLIPWAY_RUNNER_DIR` and `SLIPWAY_RUNNER_NAME`, all sharing this machine's Docker
  engine through its socket, `SLIPWAY_ENGINE_NETNS` naming the engine's namespace).
  A `.slipway.yml` whose only step is `{STEP}`; {SLOTS} warm-up builds, then {ROUNDS}
  rounds of {BUILDS} push webhooks sent one after another with only the first runner
  host's workers running, each timed from the first webhook to the moment the API lists
  all {BUILDS} builds as passed (polled every 250 ms); then the other runner hosts'
  workers start and {ROUNDS} more rounds are timed the same way. Speed-up of a round =
  its one-host time / the same round's {HOSTS}-host time; {HOSTS} hosts would make it
  {HOSTS}x if nothing but the steps took time.
  The runner hosts share one Docker engine, which makes and removes networks one at a
  time (each job has one of its own), so the figure is a floor for runner hosts with
  engines of their own.
"""
