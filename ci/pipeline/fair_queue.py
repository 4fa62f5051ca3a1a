"""Fair queueing: which waiting job the runners get next, decided atomically in Redis.

One repository's burst must not starve the others. So a job does not go straight onto RQ's
queue (:data:`~ci.pipeline.keys.JOBS_QUEUE`), which the runners take from first come first
served: its id waits in its repository's line (:func:`~ci.pipeline.keys.fair_waiting`), and
the script here admits one at a time onto RQ's queue, taken from the repository served least
recently among those below their limit of jobs at once. RQ stays the transport: the job's
hash is RQ's from the start, and only its id waits in a line of ours instead of RQ's list.

Admission is one Lua script, so that web processes, runners and recorders on any host may
run it at once: Redis runs one script at a time, and each leaves the lines, the repositories'
active sets and RQ's queue consistent, whichever process dies after it. It runs when a job
enters a line, when a runner takes a job (a place on RQ's queue is free), when a job ends or
is canceled (a place within its repository's limit is free), and every few seconds from the
reconciler, which also heals what dead processes left (``ci.builds.fair_queue``).

Here, in the core both sides share, because the server and the runners both admit; the
functions take the Redis client (or a pipeline) as an argument and do nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ci.pipeline import keys

#: How many admitted jobs RQ's queue holds for the runners. One keeps every runner fed: the
#: runner that takes it admits the next one at once, before it starts the job, so idle runners
#: take jobs one after the other without waiting. And it decides the order late: whichever
#: repository queues its first job while a backlog waits is let in at the next start, instead
#: of behind every job already handed to RQ.
READY_JOBS = 1

#: The script. Per-repository keys are found only while it runs, so it gets their prefixes
#: (and RQ's job hash prefix) as arguments, the fixed keys as keys; one Redis, not a cluster.
#: KEYS: RQ's queue list, the repositories waiting, served, limits, the clock.
#: ARGV: job hash prefix, line prefix, active set prefix, ready jobs, the operation (admit,
#: enter, release, withdraw, limit), then the repository id, the RQ job id, the limit.
SCRIPT = """
local queue, repos, served, limits, clock = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local job_key, line_key, active_key = ARGV[1], ARGV[2], ARGV[3]
local ready, op, repo, id = tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local ENDED = {finished = true, failed = true, stopped = true, canceled = true}

local function queued(job)
  return redis.call('HGET', job_key .. job, 'status') == 'queued'
end

-- Whether one more of the repository's jobs may run; ids of jobs that ended or are gone
-- (their runner and the recorder died before they released them) no longer count.
local function has_room(waiting)
  local limit = tonumber(redis.call('HGET', limits, waiting) or '0')
  local active = active_key .. waiting
  if limit == 0 or redis.call('SCARD', active) < limit then return true end
  for _, job in ipairs(redis.call('SMEMBERS', active)) do
    local status = redis.call('HGET', job_key .. job, 'status')
    if not status or ENDED[status] then redis.call('SREM', active, job) end
  end
  return redis.call('SCARD', active) < limit
end

-- Ids at the head of a list whose job is no longer queued (canceled, or gone) are dropped.
local function drop_dead(list)
  while true do
    local head = redis.call('LINDEX', list, 0)
    if not head or queued(head) then return end
    redis.call('LPOP', list)
  end
end

if op == 'enter' then
  -- A job enqueued again (Redis kept state from before) is neither active nor twice in line.
  redis.call('SREM', active_key .. repo, id)
  redis.call('LREM', line_key .. repo, 0, id)
  redis.call('RPUSH', line_key .. repo, id)
  redis.call('HSET', limits, repo, ARGV[8])
  redis.call('ZADD', repos, 'NX', redis.call('HGET', served, repo) or 0, repo)
elseif op == 'release' then
  redis.call('SREM', active_key .. repo, id)
elseif op == 'withdraw' then
  redis.call('SREM', active_key .. repo, id)
  redis.call('LREM', line_key .. repo, 0, id)
elseif op == 'limit' then
  redis.call('HSET', limits, repo, ARGV[8])
end

drop_dead(queue)
local admitted = {}
while redis.call('LLEN', queue) < ready do
  local picked = false
  for _, waiting in ipairs(redis.call('ZRANGE', repos, 0, -1)) do
    local line = line_key .. waiting
    drop_dead(line)
    if redis.call('LLEN', line) == 0 then
      redis.call('ZREM', repos, waiting)
    elseif has_room(waiting) then
      picked = redis.call('LPOP', line)
      redis.call('RPUSH', queue, picked)
      redis.call('SADD', active_key .. waiting, picked)
      local now = redis.call('INCR', clock)
      redis.call('HSET', served, waiting, now)
      if redis.call('LLEN', line) == 0 then
        redis.call('ZREM', repos, waiting)
      else
        redis.call('ZADD', repos, now, waiting)
      end
      admitted[#admitted + 1] = picked
      break
    end
  end
  if not picked then break end
end
return admitted
"""


class RedisClient(Protocol):
    """What the functions here need of a redis-py client or pipeline (the core imports no
    Redis client: the caller brings its own)."""

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any: ...


#: The script's keys, in the order it reads them.
_KEYS = [keys.JOBS_QUEUE_KEY, keys.FAIR_REPOS, keys.FAIR_SERVED, keys.FAIR_LIMITS,
         keys.FAIR_CLOCK]


def _run(redis: RedisClient, operation: str, repo_id: int | str = "", rq_job_id: str = "",
         limit: int = 0) -> Any:
    """Run the script; on a pipeline it is queued with the pipeline's other commands.

    ``EVAL`` with the script's text rather than ``EVALSHA``: Redis keeps the compiled script
    by its hash either way, and a redis-py pipeline holding an ``EVALSHA`` first asks Redis
    whether it has the script (``SCRIPT EXISTS``), a round trip more on every webhook.
    """
    return redis.eval(SCRIPT, len(_KEYS), *_KEYS, keys.RQ_JOB_KEY_PREFIX, keys.fair_waiting(""),
                      keys.fair_active(""), READY_JOBS, operation, repo_id, rq_job_id, limit)


def _text(item: bytes | str) -> str:
    return item.decode() if isinstance(item, bytes) else item


def _ids(reply: list[bytes | str]) -> list[str]:
    return [_text(item) for item in reply]


def enter(redis: RedisClient, repo_id: int, rq_job_id: str, limit: int) -> None:
    """Put an RQ job (whose hash RQ made, status queued) at the end of its repository's
    line, with the repository's limit of jobs at once (0: none), and admit what may go.

    Meant for the pipeline that creates the RQ job, so that both happen in one transaction.
    """
    _run(redis, "enter", repo_id, rq_job_id, limit)


def admit(redis: RedisClient) -> list[str]:
    """Fill RQ's queue up to :data:`READY_JOBS` from the lines; returns the RQ job ids
    admitted."""
    return _ids(_run(redis, "admit"))


def release(redis: RedisClient, repo_id: int, rq_job_id: str) -> list[str]:
    """A job ended: it no longer counts against its repository's limit. Idempotent; admits,
    and returns the RQ job ids admitted."""
    return _ids(_run(redis, "release", repo_id, rq_job_id))


def withdraw(redis: RedisClient, repo_id: int, rq_job_id: str) -> list[str]:
    """A job was canceled before it ran: out of its line and its repository's count. Admits,
    and returns the RQ job ids admitted."""
    return _ids(_run(redis, "withdraw", repo_id, rq_job_id))


def set_limit(redis: RedisClient, repo_id: int, limit: int) -> list[str]:
    """A repository's limit changed: apply it now (a higher one lets waiting jobs go at once)
    rather than with its next job. Returns the RQ job ids admitted."""
    return _ids(_run(redis, "limit", repo_id, "", limit))


@dataclass(frozen=True)
class Line:
    """One repository's state in the fair queue."""

    repo_id: int
    #: RQ job ids of its jobs waiting to be admitted, oldest first.
    waiting: list[str] = field(default_factory=list)
    #: RQ job ids of its admitted jobs that have not ended.
    active: set[str] = field(default_factory=set)
    #: Its limit of jobs at once; 0: none.
    limit: int = 0

    @property
    def at_limit(self) -> bool:
        return bool(self.limit) and len(self.active) >= self.limit


@dataclass(frozen=True)
class Snapshot:
    """What the fair queue holds, as read at one moment (one transaction)."""

    #: RQ job ids on RQ's queue, next first.
    ready: list[str]
    #: Each repository known to the fair queue, by id.
    lines: dict[int, Line]
    #: The repositories with jobs waiting, in the order admission looks at them.
    order: list[int]

    def held(self) -> set[str]:
        """Every RQ job id waiting for a runner: on RQ's queue or in a line."""
        return set(self.ready).union(*(line.waiting for line in self.lines.values()))

    def owner(self, rq_job_id: str) -> int | None:
        """The repository an admitted job counts against."""
        return next((line.repo_id for line in self.lines.values()
                     if rq_job_id in line.active), None)


def snapshot(redis: Any) -> Snapshot:
    """Read the fair queue: two round trips, the second one a transaction over every line.

    Args:
        redis: a redis-py client.
    """
    repo_ids = sorted(int(repo) for repo in redis.hkeys(keys.FAIR_LIMITS))
    with redis.pipeline(transaction=True) as pipe:
        pipe.lrange(keys.JOBS_QUEUE_KEY, 0, -1)
        pipe.zrange(keys.FAIR_REPOS, 0, -1)
        pipe.hgetall(keys.FAIR_LIMITS)
        for repo_id in repo_ids:
            pipe.lrange(keys.fair_waiting(repo_id), 0, -1)
            pipe.smembers(keys.fair_active(repo_id))
        ready, order, limits, *per_repo = pipe.execute()
    limit_of = {int(_text(repo)): int(limit) for repo, limit in limits.items()}
    lines = {repo_id: Line(repo_id, _ids(waiting), set(_ids(list(active))),
                           limit_of.get(repo_id, 0))
             for repo_id, waiting, active in zip(repo_ids, per_repo[::2], per_repo[1::2])}
    return Snapshot(ready=_ids(ready), lines=lines, order=[int(repo) for repo in order])
