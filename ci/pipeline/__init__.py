"""The pure core shared by the server (``ci``) and the runners (``runners``).

Nothing here performs I/O or imports Flask, SQLAlchemy, Redis clients or Docker:
it is the contract both sides agree on — statuses, the job payload, runner events,
build events, durations, the log format, Redis key names and the ``.slipway.yml`` parser.

May import: the standard library's pure parts and PyYAML; nothing else of ``ci``. No
clock, no environment, no files, sockets or processes (``tests/test_layout.py``).
"""
