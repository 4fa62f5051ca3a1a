"""Badge states and the shields.io "flat" SVG they render to."""

import xml.etree.ElementTree as ET

import pytest

from ci.badges import BADGE_STATES, badge_state, render_badge, text_width
from ci.pipeline.status import Status

SVG = "{http://www.w3.org/2000/svg}"

EXPECTED_FILL = {
    "passing": "#4c1",
    "failing": "#e05d44",
    "error": "#fe7d37",
    "running": "#dfb317",
    "canceled": "#9f9f9f",
    "unknown": "#9f9f9f",
}


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def box_rects(root: ET.Element) -> list[ET.Element]:
    """The label rect, the message rect and the gradient overlay, in order."""
    group = root.find(f"{SVG}g[@clip-path='url(#r)']")
    return group.findall(f"{SVG}rect")


def texts(root: ET.Element) -> list[ET.Element]:
    return root.findall(f"{SVG}g/{SVG}text")


def test_build_passing_matches_the_shields_reference_geometry():
    root = parse(render_badge("passing"))

    assert root.get("width") == "88"
    assert root.get("height") == "20"
    label, message, overlay = box_rects(root)
    assert (label.get("width"), label.get("fill")) == ("37", "#555")
    assert (message.get("x"), message.get("width"), message.get("fill")) == ("37", "51", "#4c1")
    assert overlay.get("width") == "88"
    assert overlay.get("fill") == "url(#s)"
    assert [(t.get("x"), t.get("textLength"), t.text) for t in texts(root)] == [
        ("195", "270", "build"),
        ("195", "270", "build"),
        ("615", "410", "passing"),
        ("615", "410", "passing"),
    ]


def test_text_is_drawn_with_a_shadow_at_a_tenth_of_font_size_110():
    root = parse(render_badge("failing"))

    group = root.findall(f"{SVG}g")[1]
    assert group.get("font-size") == "110"
    assert group.get("font-family") == "Verdana,Geneva,DejaVu Sans,sans-serif"
    shadow, text = texts(root)[:2]
    assert shadow.get("y") == "150"
    assert (shadow.get("fill"), shadow.get("fill-opacity")) == ("#010101", ".3")
    assert shadow.get("aria-hidden") == "true"
    assert (text.get("y"), text.get("fill")) == ("140", "#fff")
    assert {shadow.get("transform"), text.get("transform")} == {"scale(.1)"}


def test_clip_path_rounds_the_whole_badge():
    root = parse(render_badge("running"))

    clip = root.find(f"{SVG}clipPath/{SVG}rect")
    assert clip.get("rx") == "3"
    assert clip.get("width") == root.get("width")


def test_measured_widths_match_shields():
    assert text_width("build") == 27
    assert text_width("passing") == 41


def test_measured_widths_are_odd_and_grow_with_the_text():
    widths = [text_width("x" * n) for n in range(1, 12)]

    assert all(width % 2 == 1 for width in widths)
    assert widths == sorted(widths)
    assert widths[-1] > widths[0]


def test_characters_outside_ascii_still_take_space():
    assert text_width("ü") == text_width("m")


@pytest.mark.parametrize("state", BADGE_STATES)
def test_every_state_renders_well_formed_svg_with_its_colour(state):
    root = parse(render_badge(state))

    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-label") == f"build: {state}"
    assert root.find(f"{SVG}title").text == f"build: {state}"
    label, message, _ = box_rects(root)
    assert message.get("fill") == EXPECTED_FILL[state]
    assert int(label.get("width")) + int(message.get("width")) == int(root.get("width"))
    assert texts(root)[-1].text == state


def test_error_is_distinguishable_from_canceled_and_failing():
    fills = {state: box_rects(parse(render_badge(state)))[1].get("fill") for state in BADGE_STATES}

    assert fills["error"] not in (fills["canceled"], fills["failing"], fills["unknown"])


def test_markup_in_the_label_is_escaped():
    label = 'a<b&c"d'
    svg = render_badge("passing", label=label)

    assert "<b&" not in svg
    root = parse(svg)
    assert root.get("aria-label") == f"{label}: passing"
    assert root.find(f"{SVG}title").text == f"{label}: passing"
    assert texts(root)[0].text == label


def test_a_longer_label_widens_the_left_side():
    short = box_rects(parse(render_badge("passing", label="ci")))[0]
    long = box_rects(parse(render_badge("passing", label="integration tests")))[0]

    assert int(long.get("width")) > int(short.get("width"))


def test_unknown_state_is_refused_with_the_valid_ones_named():
    with pytest.raises(ValueError, match="use one of passing, failing, error"):
        render_badge("passed")


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("passed", "passing"),
        ("failed", "failing"),
        ("errored", "error"),
        ("running", "running"),
        ("queued", "running"),
        ("canceled", "canceled"),
        ("skipped", "unknown"),
        ("bogus", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_badge_state_maps_build_statuses(status, state):
    assert badge_state(status) == state


def test_badge_state_accepts_the_status_enum():
    assert badge_state(Status.PASSED) == "passing"
    assert badge_state(Status.QUEUED) == "running"
    assert badge_state(Status.ERRORED) == "error"
