"""A log as plain text for a browser or an editor: what a terminal would have drawn as
colours, cursor moves and window titles taken out.

The escape sequences are the ones the build page's converter (:mod:`ci.logs.ansi`) knows,
matched by its own patterns, so the raw log and the page agree on what is text.
"""

from __future__ import annotations

import re

from ci.logs.ansi import _CONTROL, _SEQUENCE

#: A line ending of any kind: a lone carriage return (a progress bar redrawing its line)
#: starts a new line, as it does on the build page.
_LINE_END = re.compile(r"\r\n?")


def strip_ansi(text: str) -> str:
    """``text`` without escape sequences or control characters other than tab and newline,
    with every line ending a newline."""
    return _CONTROL.sub("", _LINE_END.sub("\n", _SEQUENCE.sub("", text)))
