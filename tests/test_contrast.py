"""Every text colour of the stylesheets is readable where it is drawn: a WCAG contrast ratio
of at least 4.5:1 (level AA for normal text) against its background.

The stylesheets are parsed, not copied: a rule's text colour is checked against its own
background when it sets one, else against where such text is drawn (the log's panel, the
dark header, or the page and its panels); a rule that sets only a background is checked
with the text colour drawn on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parent.parent / "ci" / "static"
AA = 4.5

_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})\b")
_VAR = re.compile(r"var\((--[\w-]+)\)")

#: Selectors of text inside the log, drawn on its panel.
LOG_TEXT = (".ansi-", ".slipway-info", ".log ")
#: Selectors of text inside the dark page header.
HEADER_TEXT = ("header.top", ".account", "button.link")
#: Rules that set only a background, and the rule that gives the text drawn on it.
TEXT_FROM = {".status-": ".status", ".runner-": ".runner-state", "header.top": "header.top a"}


@dataclass(frozen=True)
class Rule:
    file: str
    selector: str
    declarations: dict[str, str]


def parse(path: Path) -> list[Rule]:
    """Each selector of each rule of a stylesheet, with the rule's declarations."""
    rules = []
    for selectors, body in _RULE.findall(_COMMENT.sub("", path.read_text())):
        declarations = {}
        for declaration in body.split(";"):
            name, _, value = declaration.partition(":")
            if value.strip():
                declarations[name.strip()] = value.replace("!important", "").strip()
        rules += [Rule(path.name, selector.strip(), declarations)
                  for selector in selectors.split(",")]
    return rules


RULES = parse(STATIC / "slipway.css") + parse(STATIC / "ansi.css")
VARIABLES = {name: value for rule in RULES if rule.selector == ":root"
             for name, value in rule.declarations.items()}


def colour(value: str | None) -> str | None:
    """A declaration's colour as ``#rrggbb`` (``var(--x)`` resolved), or None if it is
    none (``none``, ``inherit``, or a background image)."""
    if value is None:
        return None
    if found := _VAR.search(value):
        return colour(VARIABLES[found[1]])
    if found := _HEX.search(value):
        digits = found[0][1:]
        return "#" + (digits if len(digits) == 6 else "".join(c * 2 for c in digits)).lower()
    return None


def luminance(rrggbb: str) -> float:
    """WCAG 2 relative luminance."""
    def linear(channel: int) -> float:
        value = channel / 255
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(int(rrggbb[i:i + 2], 16)) for i in (1, 3, 5))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(first: str, second: str) -> float:
    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def text_colour(rule: Rule) -> str | None:
    return colour(rule.declarations.get("color"))


def background(rule: Rule) -> str | None:
    declarations = rule.declarations
    return colour(declarations.get("background-color") or declarations.get("background"))


PAGE, PANEL = colour("var(--bg)"), colour("var(--panel)")
HEADER = next(background(rule) for rule in RULES
              if rule.selector == "header.top" and background(rule))
FG = colour("var(--fg)")


def drawn_on(rule: Rule) -> list[str]:
    """The backgrounds a rule's text is drawn on."""
    own = background(rule)
    if own:
        return [own]
    if rule.selector.startswith(LOG_TEXT):
        return [PANEL]
    if rule.selector.startswith(HEADER_TEXT):
        return [HEADER]
    return [PAGE, PANEL]


def text_on(rule: Rule) -> str:
    """The text colour drawn on a rule that sets only a background: its own selector's
    without a state (``button`` for ``button:hover``), its family's, or the page's."""
    plain = rule.selector.split(":")[0]
    family = next((base for prefix, base in TEXT_FROM.items()
                   if rule.selector.startswith(prefix)), None)
    for selector in (plain, family):
        found = [text_colour(other) for other in RULES
                 if other.selector == selector and text_colour(other)]
        if found:
            return found[-1]
    return FG


PAIRS = sorted(
    {(rule.file, rule.selector, text, ground)
     for rule in RULES if text_colour(rule)
     for text, ground in [(text_colour(rule), each) for each in drawn_on(rule)]}
    | {(rule.file, rule.selector, text_on(rule), background(rule))
       for rule in RULES if background(rule) and not text_colour(rule)})


def test_the_stylesheets_have_the_colours_this_test_checks():
    selectors = {rule.selector for rule in RULES}
    for name in ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"):
        for variant in (name, f"bright-{name}"):
            assert {f".ansi-fg-{variant}", f".ansi-bg-{variant}"} <= selectors
    assert {".ansi-dim", ".status", ".status-skipped", ".muted", "a", ".flash",
            ".flash-error"} <= selectors
    assert len(PAIRS) > 60
    # A lower opacity would make text fainter than the ratio checked here.
    assert not [rule.selector for rule in RULES if "opacity" in rule.declarations
                and (rule.file == "ansi.css" or text_colour(rule))]


@pytest.mark.parametrize("file, selector, text, ground", PAIRS)
def test_text_has_a_contrast_of_4_5_to_1_where_it_is_drawn(file, selector, text, ground):
    ratio = contrast(text, ground)
    assert ratio >= AA, f"{file} {selector}: {text} on {ground} is {ratio:.2f}:1"


def test_every_log_colour_is_checked_on_the_logs_background():
    log_colours = {(selector, ground) for _file, selector, _text, ground in PAIRS
                   if selector.startswith(".ansi-fg-")}
    assert len(log_colours) == 16
    assert {ground for _selector, ground in log_colours} == {PANEL} == {"#f6f8fa"}


def test_the_contrast_ratio_is_wcags():
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
