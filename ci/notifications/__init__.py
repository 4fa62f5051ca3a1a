"""Notifications: tell people and other services how a build ended.

Per repository, addresses mailed when a build fails or is fixed, and URLs that get a signed
JSON POST when a build finishes (``config``). The recorder only enqueues one job when a
build finishes (``queue``); ``slipway reporter`` works out who hears of it (``outcome``),
writes it (``message``) and sends it (``mail``, ``webhook``), retrying with backoff, so a
slow or broken receiver never holds up a build.
"""
