"""Forges: each module turns one forge's webhook into :class:`ci.forges.types.Trigger`
and a :class:`ci.forges.types.CommitStatus` into that forge's API request.

This registry is the one place the forge modules are named: supporting another
forge is a module meeting :class:`ci.forges.types.Forge` plus a line here. Beside the
forges: ``payload`` (the checks every payload needs), ``signatures`` (webhook HMACs),
``types`` (Trigger, CommitStatus), and ``statuses``, which sends commit statuses out.

May import: ``ci.pipeline``; ``statuses`` also ``ci.store``, ``ci.accounts``, Redis and
RQ. The parsers do no I/O, so the registry imports only them.
"""

from __future__ import annotations

from ci.forges import gitea, github, gitlab
from ci.forges.types import Forge

FORGES: dict[str, Forge] = {
    github.NAME: github,
    gitlab.NAME: gitlab,
    gitea.NAME: gitea,
}


def get(name: str) -> Forge | None:
    """The forge module registered as ``name`` or serving it as an alias (``forgejo``)."""
    if name in FORGES:
        return FORGES[name]
    return next((forge for forge in FORGES.values() if name in forge.ALIASES), None)
