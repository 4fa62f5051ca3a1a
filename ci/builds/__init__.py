"""Builds: what happens to a build from the moment it is asked for until it ends.

``service`` accepts, cancels, restarts and reruns builds (for the webhook, the API,
the pages and the CLI alike); ``dispatch`` hands jobs to runners through RQ and
re-hands what Redis lost (the reconciler); ``recorder`` applies runner events to
the database.

May import: ``ci.store``, ``ci.accounts``, ``ci.forges``, ``ci.logs``, ``ci.pipeline``,
``ci.settings``, Redis and RQ. Not Flask, not SQLAlchemy, not ``runners``.
"""
