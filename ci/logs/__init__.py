"""Job logs on the server: ``storage`` reads the live stream in Redis and the archive
on disk (and writes the archive), ``render`` turns log entries into the build page's
HTML, ``ansi`` converts terminal colours to HTML. The entry format both sides share
is ``ci.pipeline.logformat``; the HTTP endpoints are ``ci.views.logs``.

May import: ``ci.pipeline``, Redis. Not Flask, not SQLAlchemy.
"""
