"""Builds: what happens to a build from the moment it is asked for until it ends.

``service`` accepts, cancels, restarts and reruns builds (for the webhook, the API,
the pages and the CLI alike); ``dispatch`` hands jobs to runners through RQ and
re-hands what Redis lost (the reconciler), each job waiting its repository's turn
(``fair_queue``); ``recorder`` applies runner events to
the database; ``retention`` removes old builds' logs and artifacts, and old builds.

May import: ``ci.store``, ``ci.accounts``, ``ci.artifacts``, ``ci.forges``, ``ci.logs``,
``ci.pipeline``, ``ci.settings``, Redis and RQ. Not Flask, not SQLAlchemy, not ``runners``.
"""
