"""The store: the only package that speaks SQL.

``db`` makes engines and sessions and migrates the schema, ``models`` holds the
tables, ``queries`` every read and write the rest of Slipway asks for by function,
``intake`` the webhook's few statements on bare cursors (compiled by ``rawsql``),
``attempts`` the conditional updates that let several processes act on jobs at once,
``history`` every attempt of a job, the earlier ones a rerun or a retry replaced,
``admin`` what only the admin pages ask for,
``listing`` the lists of builds the pages show (branches, pull requests, charts),
``schedules`` the cron schedules and the claim of each due time,
``notifications`` the addresses and hooks told when a build finishes,
``pruning`` which old builds lose their logs or go (``ci.builds.retention``),
``artifacts`` the rows naming the files each attempt of a job kept,
``migrations`` the Alembic revisions. Other packages call ``store.get_repo(session,
…)`` and never build a query or open an ORM session themselves; callers decide the
transaction (``session.commit()``).

May import: SQLAlchemy, Alembic, ``ci.pipeline``, ``ci.forges`` (its pure parsers and
types). Nothing that imports ``ci.store`` back.
"""

from ci.store.admin import *  # noqa: F401,F403 — the facade: ``store.waiting_jobs``
from ci.store.artifacts import *  # noqa: F401,F403 — ``store.job_artifacts``, …
from ci.store.attempts import *  # noqa: F401,F403 — the facade: ``store.take_event_turn``
from ci.store.db import Session, Sessions  # noqa: F401 — for type hints elsewhere
from ci.store.history import *  # noqa: F401,F403 — the facade: ``store.list_attempts``
from ci.store.intake import *  # noqa: F401,F403 — the facade: ``store.create_build``
from ci.store.listing import *  # noqa: F401,F403 — the facade: ``store.branch_heads``, …
from ci.store.notifications import *  # noqa: F401,F403 — ``store.notification_hooks``, …
from ci.store.queries import *  # noqa: F401,F403 — the facade: ``store.get_repo``, …
from ci.store.schedules import *  # noqa: F401,F403 — the facade: ``store.claim_slot``, …
