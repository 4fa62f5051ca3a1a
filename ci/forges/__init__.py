"""Forges: each module turns one forge's webhook into :class:`ci.forges.types.Trigger`."""
