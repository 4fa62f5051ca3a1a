"""People and what belongs to a repository's owners: ``users`` (passwords, API tokens,
the sign-in throttle), ``access`` (who may read or change a repository),
``repo_secrets`` (build secrets and which builds get them), ``webhook_secrets`` (webhook
secrets at rest), ``crypto`` (encryption at rest), ``job_limits`` (a repository's container
limits within the administrator's maxima).

May import: ``ci.store``, ``ci.pipeline``, ``ci.settings``, Redis, werkzeug's password
hashing, cryptography. Not Flask's globals, not SQLAlchemy.
"""
