"""The pure core shared by the server (``ci``) and the runners (``runners``).

Nothing here performs I/O or imports Flask, SQLAlchemy, Redis clients or Docker:
it is the contract both sides agree on — statuses, the job payload, runner events,
Redis key names and the ``.slipway.yml`` parser.
"""
