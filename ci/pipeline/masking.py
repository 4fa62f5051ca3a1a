"""Masking secret values in a stream of output, chunk by chunk.

A secret may be printed across two chunks (``"hun"`` then ``"ter2"``), so the end
of a chunk that could be the start of a secret is held back until the next chunk
shows whether it is one. Only that much is held: ordinary output passes at once.
"""

from __future__ import annotations

import base64

MASK = "****"
#: Values shorter than this are not masked: masking "ab" would hide ordinary text.
MIN_LENGTH = 4


def masked_forms(values: list[str]) -> list[str]:
    """The strings to hide for ``values``: each value and its base64 encodings."""
    forms: set[str] = set()
    for value in values:
        if len(value) < MIN_LENGTH:
            continue
        forms.add(value)
        encoded = base64.b64encode(value.encode()).decode()
        forms.update({encoded, encoded.rstrip("="),
                      base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")})
    return sorted(forms, key=len, reverse=True)


class Masker:
    """Replaces secrets with ``****`` in one output stream; call :meth:`flush` at its end."""

    def __init__(self, values: list[str]) -> None:
        self._forms = masked_forms(values)
        self._held = ""

    def feed(self, text: str) -> str:
        if not self._forms:
            return text
        data = self._held + text
        for form in self._forms:
            data = data.replace(form, MASK)
        keep = self._partial_suffix(data)
        self._held = data[len(data) - keep:] if keep else ""
        return data[:len(data) - keep] if keep else data

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held

    def _partial_suffix(self, data: str) -> int:
        """Length of the longest end of ``data`` that begins some secret form."""
        longest = min(max(map(len, self._forms)) - 1, len(data))
        for size in range(longest, 0, -1):
            tail = data[-size:]
            if any(form.startswith(tail) for form in self._forms):
                return size
        return 0
