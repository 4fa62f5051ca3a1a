"""The web: Flask blueprints (pages, the JSON API, webhooks, logs, badges, sign-in) and
their helpers — ``resources`` (the app's database sessions and Redis), ``assets``
(fingerprinted static files), ``lookup`` (URL → repo, build, job or 404), ``present``
(what pages and JSON show), ``security`` (the headers of every answer, the body limit).

The only package that uses Flask's request and app globals; everything below it gets
its connections as arguments. May import every other ``ci`` package but ``ci.cli``;
not SQLAlchemy (ask ``ci.store``), not ``runners``, not Docker.
"""
