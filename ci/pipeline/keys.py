"""Redis key and queue names of the server <-> runner contract.

Every key Slipway writes to Redis is named here, so both sides agree and an
operator can find them with ``redis-cli --scan --pattern 'slipway:*'``.
"""

#: The RQ queue runners take jobs from.
JOBS_QUEUE = "slipway-jobs"

#: The RQ queue of commit status reports to forges, worked by ``slipway reporter``.
#: Apart from :data:`JOBS_QUEUE` so that a slow or unreachable forge never holds up a build.
STATUS_QUEUE = "slipway-statuses"

#: The RQ queue of build notifications (mails, outgoing webhooks), worked by
#: ``slipway reporter`` too: a mail server or a hook that is slow or down never holds up a build.
NOTIFY_QUEUE = "slipway-notifications"

#: Dotted name of the runner's entry point; the server enqueues by name and never
#: imports the runner.
RUN_JOB = "runners.worker.run_job"

#: How every RQ queue and worker of Slipway keeps a job's call in Redis: as JSON. RQ's
#: default, pickle, runs code for anyone who can write to Redis. Named, not imported (RQ
#: resolves the name), so that this module needs no RQ; pass it as ``serializer=``.
RQ_SERIALIZER = "rq.serializers.JSONSerializer"

#: RQ's own Redis names for the list of :data:`JOBS_QUEUE` and for a job's hash (its
#: ``Queue.key`` and ``Job.key_for``), spelled out for the fair queue's script, which pushes
#: onto that list and reads jobs' states without RQ; a test holds them equal to RQ's.
JOBS_QUEUE_KEY = f"rq:queue:{JOBS_QUEUE}"
RQ_JOB_KEY_PREFIX = "rq:job:"

#: The repositories with jobs waiting to be admitted to :data:`JOBS_QUEUE` (a sorted set,
#: scored by when each was last served), in the order the fair queue serves them
#: (``ci.pipeline.fair_queue``).
FAIR_REPOS = "slipway:fair:repos"

#: When each repository was last served (a hash: repository id -> :data:`FAIR_CLOCK`), kept
#: while it has nothing waiting, so that it comes back to its place and not to the front.
FAIR_SERVED = "slipway:fair:served"

#: Each repository's limit of jobs at once (a hash: repository id -> limit, 0: none), as its
#: last enqueued job brought it; its fields also name every repository with an active set.
FAIR_LIMITS = "slipway:fair:limits"

#: A counter that increases at each admission: the order in which repositories were served.
FAIR_CLOCK = "slipway:fair:clock"


def fair_waiting(repo_id: int | str) -> str:
    """A repository's line: the RQ job ids of its jobs waiting to be admitted, oldest first."""
    return f"slipway:fair:waiting:{repo_id}"


def fair_active(repo_id: int | str) -> str:
    """The RQ job ids of a repository's admitted jobs that have not ended (a set)."""
    return f"slipway:fair:active:{repo_id}"

#: Stream of runner events (job started, step finished, …) read by the recorder.
EVENTS_STREAM = "slipway:events"

#: Consumer group of the recorders on :data:`EVENTS_STREAM`.
RECORDER_GROUP = "recorders"

#: Events the recorder could not apply, each with its error, kept for a person to look at
#: (``redis-cli XRANGE slipway:events:dead - +``) instead of stopping the recorder.
EVENTS_DEAD_STREAM = "slipway:events:dead"

#: How many set-aside events :data:`EVENTS_DEAD_STREAM` keeps (about; the oldest go first).
EVENTS_DEAD_MAXLEN = 10_000

#: How long a finished job's live log stays in Redis after it was archived, so
#: that clients still following it can finish reading.
LOG_STREAM_TTL_SECONDS = 600

#: A runner holds a job's lease while it works on it and refreshes it this often.
LEASE_REFRESH_SECONDS = 5

#: A lease not refreshed for this long means its runner is gone.
LEASE_TTL_SECONDS = 20


def log_stream(job_id: int) -> str:
    """The Redis stream holding a job's live log chunks."""
    return f"slipway:log:{job_id}"


def artifact_chunks(job_id: int, attempt: int) -> str:
    """The Redis list holding the files one attempt of a job kept, as a tar cut in chunks of
    at most :data:`ARTIFACT_CHUNK_BYTES`, from the runner to the recorder."""
    return f"slipway:artifacts:{job_id}:{attempt}"


#: The largest chunk of :func:`artifact_chunks`: Redis moves each in one reply.
ARTIFACT_CHUNK_BYTES = 1024 * 1024

#: How long kept files wait in Redis for the recorder, which removes them once stored.
ARTIFACT_CHUNKS_TTL_SECONDS = 24 * 3600


def lease(job_id: int) -> str:
    """The key a runner holds (value: attempt number) while it runs a job."""
    return f"slipway:lease:{job_id}"


def current_attempt(job_id: int) -> str:
    """The key holding the attempt number the server expects to run."""
    return f"slipway:attempt:{job_id}"


def rq_job_id(job_id: int, attempt: int) -> str:
    """The RQ job id of one attempt of a job, so re-enqueues never collide."""
    return f"slipway-job-{job_id}-{attempt}"


def cancel(job_id: int) -> str:
    """Set (to who asked) when a job must stop; also published on :func:`cancel` as a channel."""
    return f"slipway:cancel:{job_id}"


def status_sent(repo_id: int, sha: str, context: str) -> str:
    """What was last reported for one status context of a commit (build number and body)."""
    return f"slipway:status:{repo_id}:{sha}:{context}"


def status_lock(repo_id: int, sha: str) -> str:
    """Held while a commit's statuses are read and sent, so that reports never cross."""
    return f"slipway:status-lock:{repo_id}:{sha}"


def notified(build_id: int, finished_at: str, channel: str) -> str:
    """Set when one end of a build (``finished_at``) was queued, then sent, to one channel
    (``build``, ``mail``, ``hook-<id>``): each is notified once, however often it is asked."""
    return f"slipway:notified:{build_id}:{finished_at}:{channel}"


def sign_in_failures(user: str, address: str) -> str:
    """Failed sign-ins of one user name from one address, counted for a window (expires)."""
    return f"slipway:sign-in-failures:{user[:100]}:{address}"

#: Stream of "this build changed" notices (repository id, build id), written after each
#: change is committed and read by the pages that show builds live (``ci.builds.changes``).
CHANGES_STREAM = "slipway:changes"

#: How many notices :data:`CHANGES_STREAM` keeps (about); a page only reads the newest.
CHANGES_MAXLEN = 10_000


def metrics_histogram(name: str) -> str:
    """A histogram of ``/metrics`` kept in Redis (a hash: bucket counts, sum, count), so
    that every web worker and host adds to, and answers with, the same series."""
    return f"slipway:metrics:{name}"

#: Set (to its name, expiring after the pruning interval) by the recorder that starts a
#: retention pass, so that of several recorders one prunes per interval.
PRUNE_LOCK = "slipway:prune-lock"
