"""The ``slipway`` command, the composition root: ``main`` (repositories, builds and
the long-running processes), ``users`` (users, tokens, grants), ``repos`` (secrets and
limits of a repository), ``bootstrap`` (starting Redis and a Docker engine).

May import: anything — it is the one server-side package that reaches into
``runners`` (the ``worker`` and ``images`` commands) and, with ``runners``, the
Docker SDK. Not Flask's globals, not SQLAlchemy.
"""
