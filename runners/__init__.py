"""The runner side: takes jobs from RQ, runs them in containers, reports through Redis.

Runners need only Redis and a Docker engine. They import nothing from ``ci`` but
the pure ``ci.pipeline`` core, and never touch the SQL database.
"""
