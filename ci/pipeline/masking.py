"""Masking secret values in a stream of output, chunk by chunk.

A secret may be printed across two chunks (``"hun"`` then ``"ter2"``), so the end
of a chunk that could be the start of a secret is held back until the next chunk
shows whether it is one. Only that much is held: ordinary output passes at once.

A secret of several lines (a private key) is also masked line by line: a program
may print its lines apart, or with other line endings, and each is still a secret.
"""

from __future__ import annotations

import base64

MASK = "****"
#: Values shorter than this are not masked: masking "ab" would hide ordinary text.
MIN_LENGTH = 4


def masked_forms(values: list[str]) -> list[str]:
    """The strings to hide for ``values``: each value, its base64 encodings, and each of its
    lines without surrounding blanks; longest first, so that a whole value is one mask."""
    forms: set[str] = set()
    for value in values:
        if len(value) < MIN_LENGTH:
            continue
        forms.add(value)
        encoded = base64.b64encode(value.encode()).decode()
        forms.update({encoded, encoded.rstrip("="),
                      base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")})
        lines = (line.strip() for line in value.splitlines())
        forms.update(line for line in lines if len(line) >= MIN_LENGTH)
    return sorted(forms, key=len, reverse=True)


class Masker:
    """Replaces secrets with ``****`` in one output stream; call :meth:`flush` at its end."""

    def __init__(self, values: list[str]) -> None:
        self._forms = masked_forms(values)
        self._held = ""

    def mask(self, text: str) -> str:
        """``text`` with every secret masked: for a whole message, not a stream's chunk."""
        for form in self._forms:
            text = text.replace(form, MASK)
        return text

    def feed(self, text: str) -> str:
        """The part of a stream's next chunk that can be shown now, masked; the end that
        might begin a secret is held until the next chunk (or :meth:`flush`)."""
        if not self._forms:
            return text
        data = self.mask(self._held + text)
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
