"""The WSGI entry point: ``gunicorn app:app`` or ``flask --app app run``."""

import gc

from ci import create_app

app = create_app()
# What is loaded by now lives as long as the worker; frozen, the collector's full
# passes skip it (about 60 ms each in a web worker otherwise, every few thousand
# requests).
gc.freeze()
