"""Turn ANSI-coloured build output into safe HTML for the build page.

Logs arrive in chunks of arbitrary size while a job runs, so the converter is a
stream: colours carry from one chunk to the next, and an escape sequence cut in half
by a chunk boundary waits for its other half instead of leaking ``[31m`` onto the
page. Each chunk's HTML is complete on its own (every span it opens, it closes), so
the page can append chunks as they arrive over SSE without re-rendering. Spans close at
every line's end too (the style re-opens on the next line), so the HTML cut at its
newlines is one complete piece per line: the build page numbers and links lines.

Only SGR (colour and style) sequences become markup; everything else a terminal
understands — cursor movement, screen clearing, window titles — is dropped, because a
log page is not a terminal.
"""

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from html import escape

_COLOR_NAMES = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")

# An unterminated OSC (a title or hyperlink whose end never comes) must not hold back
# or swallow the rest of the log; a sequence longer than this is not one.
_MAX_SEQUENCE = 4096

# CSI: ESC [ params intermediates final. Strings (OSC, DCS, SOS, PM, APC) end with BEL
# or ST (ESC \). Anything else is a short escape such as ESC ( B or ESC =, whose final
# byte is never one that introduces a CSI or a string.
_SEQUENCE = re.compile(
    r"\x1b\[(?P<params>[0-?]*)(?P<inter>[ -/]*)(?P<final>[@-~])"
    rf"|\x1b[\]PX^_][^\x07\x1b]{{0,{_MAX_SEQUENCE}}}(?:\x07|\x1b\\)"
    r"|\x1b(?:[ -/]+[0-~]|[0-OQ-WYZ\\`-~])"
)
# The start of one of the sequences above, cut off by the end of the chunk.
_PARTIAL = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|[\]PX^_][^\x07\x1b]*\x1b?|[ -/]*)")
_SGR_PARAMS = re.compile(r"[0-9;:]*")
# C0 controls other than tab, newline and carriage return mean nothing on a page and
# some are not allowed in HTML at all.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

_CUBE_LEVELS = (0, 95, 135, 175, 215, 255)


@dataclass(frozen=True)
class _Style:
    """The graphic rendition in effect; a colour is a class suffix or a ``#rrggbb``."""

    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False
    fg: str | None = None
    bg: str | None = None

    def open_tag(self) -> str:
        """The ``<span>`` for this style, or ``""`` for the terminal's default."""
        classes = [
            f"ansi-{name}"
            for name in ("bold", "dim", "italic", "underline")
            if getattr(self, name)
        ]
        styles = []
        for layer, color, prop in (("fg", self.fg, "color"), ("bg", self.bg, "background-color")):
            if color is None:
                continue
            if color.startswith("#"):
                styles.append(f"{prop}:{color}")
            else:
                classes.append(f"ansi-{layer}-{color}")
        if not classes and not styles:
            return ""
        attrs = f' class="{" ".join(classes)}"' if classes else ""
        if styles:
            attrs += f' style="{";".join(styles)}"'
        return f"<span{attrs}>"


_DEFAULT = _Style()


class AnsiToHtml:
    """Stateful: colours set in one chunk carry over to the next chunk.

    Feed the chunks of one log in order and concatenate the results; call
    :meth:`flush` once at the end. One instance per log: the state is not shared and
    the class is not thread-safe.
    """

    def __init__(self) -> None:
        self._style = _DEFAULT
        self._pending = ""

    def feed(self, text: str) -> str:
        """Convert the next chunk of a log.

        Args:
            text: Raw output, possibly ending in the middle of an escape sequence or
                between the ``\\r`` and ``\\n`` of a line ending.

        Returns:
            HTML in which all text is escaped and every span opened is also closed;
            the style still in effect re-opens its span in the next chunk's output.
        """
        return self._convert(self._pending + text, final=False)

    def flush(self) -> str:
        """Emit what :meth:`feed` held back, at the end of the log.

        A trailing ``\\r`` is emitted; an escape sequence that was never completed
        is dropped, as a terminal would never have acted on it.

        Returns:
            The HTML for the held-back text, possibly empty.
        """
        return self._convert(self._pending, final=True)

    def _convert(self, data: str, final: bool) -> str:
        """Render ``data``, holding back what may continue in the next chunk."""
        self._pending = ""
        held = ""
        if not final and data.endswith("\r"):
            data, held = data[:-1], "\r"
        out: list[str] = []
        tag = ""
        pieces, rest = _split(data, final)
        for text, params in pieces:
            if params is not None:
                self._style = _apply_sgr(self._style, params)
                continue
            text = _CONTROL.sub("", text.replace("\r\n", "\n"))
            if not text:
                continue
            wanted = _open_tag(self._style)
            for number, line in enumerate(text.split("\n")):
                if number:
                    if tag:
                        out.append("</span>")
                        tag = ""
                    out.append("\n")
                if not line:
                    continue
                if wanted != tag:
                    if tag:
                        out.append("</span>")
                    out.append(wanted)
                    tag = wanted
                out.append(escape(line))
        if tag:
            out.append("</span>")
        self._pending = rest + held
        return "".join(out)


def _split(data: str, final: bool) -> tuple[list[tuple[str, str | None]], str]:
    """Cut ``data`` into text runs and SGR parameter strings.

    Returns:
        ``(pieces, rest)``: each piece is ``(text, None)`` or ``("", params)`` for an
        SGR sequence; ``rest`` is an unfinished sequence at the end, kept for the next
        chunk, or dropped when ``final``. Other escape sequences are left out of both,
        and a lone ESC that starts no sequence is dropped on its own.
    """
    pieces: list[tuple[str, str | None]] = []
    pos = 0
    while (start := data.find("\x1b", pos)) != -1:
        if start > pos:
            pieces.append((data[pos:start], None))
        match = _SEQUENCE.match(data, start)
        if match:
            params = match["params"]
            if match["final"] == "m" and not match["inter"] and _SGR_PARAMS.fullmatch(params):
                pieces.append(("", params))
            pos = match.end()
        elif len(data) - start <= _MAX_SEQUENCE and _PARTIAL.fullmatch(data, start):
            return pieces, ("" if final else data[start:])
        else:
            pos = start + 1
    if pos < len(data):
        pieces.append((data[pos:], None))
    return pieces, ""


@lru_cache(maxsize=1024)
def _open_tag(style: _Style) -> str:
    """:meth:`_Style.open_tag`, remembered: a log uses a handful of styles, line after line."""
    return style.open_tag()


@lru_cache(maxsize=4096)
def _apply_sgr(style: _Style, params: str) -> _Style:
    """Return ``style`` changed by one SGR sequence's parameters.

    Parameters a page cannot show (blink, inverse, fonts) are ignored, as is a
    malformed extended colour, rather than guessing. Remembered (styles are immutable,
    and a log repeats the same few sequences on every line, as test runners colour
    each result): building a style anew for each costs more than the rest of a line.
    """
    codes = params.split(";")
    i = 0
    while i < len(codes):
        code = codes[i]
        i += 1
        if ":" in code:
            style = _apply_colon_form(style, code.split(":"))
            continue
        n = _number(code)
        if n in (38, 48):
            color, used = _extended_color([_number(c) for c in codes[i : i + 4]])
            i += used
            if color is not None:
                style = replace(style, **{"fg" if n == 38 else "bg": color})
        else:
            style = _apply_code(style, n)
    return style


def _apply_colon_form(style: _Style, parts: list[str]) -> _Style:
    """Handle ISO 8613-6 forms like ``38:2::255:0:0`` and ``4:3`` (curly underline)."""
    head = _number(parts[0])
    values = [_number(p) for p in parts[1:]]
    if head in (38, 48) and values:
        if values[0] == 2 and len(values) >= 5:
            values = [2, *values[-3:]]
        color, _ = _extended_color(values)
        if color is not None:
            return replace(style, **{"fg" if head == 38 else "bg": color})
        return style
    if head == 4:
        return replace(style, underline=bool(values[0]) if values else True)
    return _apply_code(style, head)


def _number(param: str) -> int:
    """One parameter as a number: empty means 0, and a malformed one (``4:3`` where a
    plain number belongs, or digits too many for any code) is -1, which no code uses."""
    if not param:
        return 0
    if param.isdigit() and len(param) <= 9:
        return int(param)
    return -1


def _extended_color(args: list[int]) -> tuple[str | None, int]:
    """Read ``5;n`` or ``2;r;g;b`` after a 38/48; return the colour and codes used."""
    if args[:1] == [5] and len(args) >= 2:
        return _palette_256(args[1]), 2
    if args[:1] == [2] and len(args) >= 4:
        r, g, b = args[1:4]
        if not all(0 <= c <= 255 for c in (r, g, b)):
            return None, 4
        return f"#{r:02x}{g:02x}{b:02x}", 4
    return None, len(args)


def _palette_256(n: int) -> str | None:
    """Colour ``n`` of xterm's 256-colour palette.

    The first 16 are the same colours as SGR 30–37 and 90–97, so they map to the
    same classes and follow the page's palette; the rest are fixed RGB values.
    """
    if not 0 <= n <= 255:
        return None
    if n < 8:
        return _COLOR_NAMES[n]
    if n < 16:
        return f"bright-{_COLOR_NAMES[n - 8]}"
    if n < 232:
        n -= 16
        r, g, b = (_CUBE_LEVELS[n // 36], _CUBE_LEVELS[n // 6 % 6], _CUBE_LEVELS[n % 6])
        return f"#{r:02x}{g:02x}{b:02x}"
    level = 8 + 10 * (n - 232)
    return f"#{level:02x}{level:02x}{level:02x}"


def _apply_code(style: _Style, n: int) -> _Style:
    """Apply one plain SGR code."""
    if n == 0:
        return _DEFAULT
    if n in _SET_BY_CODE:
        return replace(style, **_SET_BY_CODE[n])
    for layer, normal, bright in (("fg", 30, 90), ("bg", 40, 100)):
        if normal <= n < normal + 8:
            return replace(style, **{layer: _COLOR_NAMES[n - normal]})
        if bright <= n < bright + 8:
            return replace(style, **{layer: f"bright-{_COLOR_NAMES[n - bright]}"})
    return style


#: What each plain SGR code other than a colour sets (or resets).
_SET_BY_CODE: dict[int, dict[str, bool | None]] = {
    1: {"bold": True}, 2: {"dim": True}, 3: {"italic": True}, 4: {"underline": True},
    22: {"bold": False, "dim": False}, 23: {"italic": False}, 24: {"underline": False},
    39: {"fg": None}, 49: {"bg": None},
}
