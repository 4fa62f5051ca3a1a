"""SVG status badges in the shields.io "flat" style, rendered without a network call.

READMEs embed ``/<owner>/<repo>/badge.svg`` next to badges from shields.io, so the
badge copies shields' geometry exactly: text is measured with Verdana 11px advance
widths, drawn at ``font-size="110"`` and scaled by ``.1`` (crisp at any zoom), and
``textLength`` pins each text to its measured width so that viewers falling back to
another font still fit the box.
"""

from enum import Enum
from html import escape

from ci.pipeline.status import Status

BADGE_STATES = ("passing", "failing", "error", "running", "canceled", "unknown")

# "error" is orange rather than Travis' grey so an infrastructure failure stands out
# from "canceled" and "unknown", yet reads differently from a red test failure.
_COLORS = {
    "passing": "#4c1",
    "failing": "#e05d44",
    "error": "#fe7d37",
    "running": "#dfb317",
    "canceled": "#9f9f9f",
    "unknown": "#9f9f9f",
}
_LABEL_COLOR = "#555"

_STATE_OF_STATUS = {
    Status.PASSED.value: "passing",
    Status.FAILED.value: "failing",
    Status.ERRORED.value: "error",
    Status.RUNNING.value: "running",
    Status.QUEUED.value: "running",
    Status.CANCELED.value: "canceled",
}

# Verdana's advance widths in font units (2048 per em) for printable ASCII, scaled
# to 11px below; these are the widths shields measures with its anafanafo tables.
_VERDANA_UNITS_PER_EM = 2048
_FONT_SIZE_PX = 11
_VERDANA_ADVANCES = {
    " ": 720, "!": 807, '"': 940, "#": 1676, "$": 1302, "%": 2204, "&": 1488,
    "'": 550, "(": 930, ")": 930, "*": 1302, "+": 1676, ",": 745, "-": 930,
    ".": 745, "/": 930, "0": 1302, "1": 1302, "2": 1302, "3": 1302, "4": 1302,
    "5": 1302, "6": 1302, "7": 1302, "8": 1302, "9": 1302, ":": 930, ";": 930,
    "<": 1676, "=": 1676, ">": 1676, "?": 1117, "@": 2048, "A": 1401, "B": 1405,
    "C": 1430, "D": 1579, "E": 1294, "F": 1178, "G": 1587, "H": 1539, "I": 862,
    "J": 931, "K": 1419, "L": 1140, "M": 1726, "N": 1532, "O": 1612, "P": 1235,
    "Q": 1612, "R": 1424, "S": 1401, "T": 1262, "U": 1499, "V": 1401, "W": 2025,
    "X": 1403, "Y": 1260, "Z": 1403, "[": 930, "\\": 930, "]": 930, "^": 1676,
    "_": 1302, "`": 1302, "a": 1229, "b": 1276, "c": 1067, "d": 1276, "e": 1220,
    "f": 720, "g": 1276, "h": 1296, "i": 562, "j": 705, "k": 1212, "l": 562,
    "m": 1992, "n": 1296, "o": 1243, "p": 1276, "q": 1276, "r": 874, "s": 1067,
    "t": 807, "u": 1296, "v": 1212, "w": 1675, "x": 1212, "y": 1212, "z": 1075,
    "{": 1300, "|": 930, "}": 1300, "~": 1676,
}
_VERDANA_11PX = {
    char: units * _FONT_SIZE_PX / _VERDANA_UNITS_PER_EM
    for char, units in _VERDANA_ADVANCES.items()
}
# Characters outside the table are measured as "m", the widest lowercase letter,
# as anafanafo does, so that unexpected text overflows its box rarely.
_FALLBACK_WIDTH = _VERDANA_11PX["m"]

_HORIZONTAL_PADDING = 5
_SCALE = 10


def badge_state(status: str | None) -> str:
    """Map a build status to the word a badge shows.

    Badges speak the vocabulary READMEs already use ("passing", "failing") rather
    than Slipway's stored statuses; a queued build shows "running" because to a
    reader both mean "a result is on its way".

    Args:
        status: A build status such as ``"passed"`` or a
            :class:`~ci.pipeline.status.Status`; ``None`` when the repository has no
            build yet.

    Returns:
        One of :data:`BADGE_STATES`; ``"unknown"`` for ``None`` or any status this
        module does not know, so a new status never breaks a README.
    """
    if isinstance(status, Enum):
        status = status.value
    return _STATE_OF_STATUS.get(status, "unknown")


def text_width(text: str) -> int:
    """Measure ``text`` as shields does: Verdana 11px, truncated, then made odd.

    An odd width centres the text on a whole pixel once the 5px padding is added on
    both sides, which is why shields rounds this way; matching it keeps Slipway's
    badges the same size as shields' next to them.

    Args:
        text: The label or message, before XML escaping.

    Returns:
        The width in pixels, always an odd integer.
    """
    width = int(sum(_char_width(char) for char in text))
    return width if width % 2 else width + 1


def render_badge(state: str, label: str = "build") -> str:
    """Render a shields.io "flat" badge for a badge state.

    Args:
        state: One of :data:`BADGE_STATES`; it is also the text on the right.
        label: The text on the left; escaped here, so any string is safe.

    Returns:
        The SVG document as a string, for serving as ``image/svg+xml``.

    Raises:
        ValueError: If ``state`` is not one of :data:`BADGE_STATES`.
    """
    if state not in _COLORS:
        raise ValueError(
            f"badge state {state!r} is not known; use one of {', '.join(BADGE_STATES)}"
        )
    label_width = text_width(label)
    message_width = text_width(state)
    left = label_width + 2 * _HORIZONTAL_PADDING
    right = message_width + 2 * _HORIZONTAL_PADDING
    total = left + right
    # shields nudges both texts one pixel towards the seam; doing the same keeps the
    # output identical to its badges. Odd widths make every coordinate an integer.
    label_x = _SCALE * (1 + _HORIZONTAL_PADDING) + _SCALE * label_width // 2
    message_x = _SCALE * (left - 1 + _HORIZONTAL_PADDING) + _SCALE * message_width // 2
    title = escape(f"{label}: {state}")
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
        f' width="{total}" height="20" role="img" aria-label="{title}">'
        f"<title>{title}</title>"
        '<linearGradient id="s" x2="0" y2="100%">'
        '<stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/>'
        "</linearGradient>"
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        '<g clip-path="url(#r)">'
        f'<rect width="{left}" height="20" fill="{_LABEL_COLOR}"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{_COLORS[state]}"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/>'
        "</g>"
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif"'
        ' text-rendering="geometricPrecision" font-size="110">'
        f"{_text(label, label_x, label_width)}"
        f"{_text(state, message_x, message_width)}"
        "</g>"
        "</svg>"
    )


def _char_width(char: str) -> float:
    """Width of one character in pixels; control characters take no space."""
    if char < " " or char == "\x7f":
        return 0.0
    return _VERDANA_11PX.get(char, _FALLBACK_WIDTH)


def _text(text: str, x: int, width: int) -> str:
    """One text drawn twice: a dark shadow one unit lower, then the white text."""
    body = escape(text)
    length = _SCALE * width
    return (
        f'<text aria-hidden="true" x="{x}" y="150" fill="#010101" fill-opacity=".3"'
        f' transform="scale(.1)" textLength="{length}">{body}</text>'
        f'<text x="{x}" y="140" transform="scale(.1)" fill="#fff"'
        f' textLength="{length}">{body}</text>'
    )
