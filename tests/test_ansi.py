"""ANSI-coloured build output to safe HTML, chunk by chunk."""

import re
from pathlib import Path

import pytest

from ci.logs.ansi import AnsiToHtml

ESC = "\x1b"
CSS = Path(__file__).resolve().parent.parent / "ci" / "static" / "ansi.css"


def to_html(text: str) -> str:
    """A whole log through one converter, as the build page renders a finished step."""
    converter = AnsiToHtml()
    return converter.feed(text) + converter.flush()


def test_markup_in_the_log_is_escaped():
    html = to_html("<script>alert(1)</script> & done")

    assert html == "&lt;script&gt;alert(1)&lt;/script&gt; &amp; done"


def test_markup_inside_a_coloured_span_is_escaped():
    html = to_html(f"{ESC}[31m<img src=x onerror=alert(1)>{ESC}[0m")

    assert html == '<span class="ansi-fg-red">&lt;img src=x onerror=alert(1)&gt;</span>'


def test_plain_text_has_no_spans():
    assert to_html("just text\n") == "just text\n"


def test_foreground_colour_becomes_a_class():
    assert to_html(f"{ESC}[32mok{ESC}[0m") == '<span class="ansi-fg-green">ok</span>'


def test_bright_and_background_colours():
    html = to_html(f"{ESC}[91;104mx")

    assert html == '<span class="ansi-fg-bright-red ansi-bg-bright-blue">x</span>'


def test_reset_closes_the_span_and_later_text_is_plain():
    html = to_html(f"{ESC}[31mred{ESC}[0m plain{ESC}[33myellow{ESC}[m after")

    assert html == (
        '<span class="ansi-fg-red">red</span> plain'
        '<span class="ansi-fg-yellow">yellow</span> after'
    )


def test_bold_and_colour_combine_in_one_span():
    html = to_html(f"{ESC}[1;31mboth{ESC}[22mcolour only")

    assert html == (
        '<span class="ansi-bold ansi-fg-red">both</span>'
        '<span class="ansi-fg-red">colour only</span>'
    )


@pytest.mark.parametrize(
    ("on", "off", "cls"),
    [("2", "22", "ansi-dim"), ("3", "23", "ansi-italic"), ("4", "24", "ansi-underline")],
)
def test_style_attributes_and_their_resets(on, off, cls):
    html = to_html(f"{ESC}[{on}mstyled{ESC}[{off}mplain")

    assert html == f'<span class="{cls}">styled</span>plain'


def test_default_foreground_keeps_the_background():
    html = to_html(f"{ESC}[31;42ma{ESC}[39mb{ESC}[49mc")

    assert html == (
        '<span class="ansi-fg-red ansi-bg-green">a</span>'
        '<span class="ansi-bg-green">b</span>c'
    )


def test_256_colours_become_inline_styles():
    html = to_html(f"{ESC}[38;5;196mred{ESC}[48;5;232mgrey bg")

    assert html == (
        '<span style="color:#ff0000">red</span>'
        '<span style="color:#ff0000;background-color:#080808">grey bg</span>'
    )


def test_256_colour_cube_values():
    assert to_html(f"{ESC}[38;5;67mx") == '<span style="color:#5f87af">x</span>'


def test_first_16_of_256_colours_use_the_palette_classes():
    assert to_html(f"{ESC}[38;5;1ma{ESC}[38;5;12mb") == (
        '<span class="ansi-fg-red">a</span><span class="ansi-fg-bright-blue">b</span>'
    )


def test_truecolour_foreground_and_background():
    html = to_html(f"{ESC}[38;2;255;128;0;48;2;0;0;16mx")

    assert html == '<span style="color:#ff8000;background-color:#000010">x</span>'


def test_truecolour_colon_form():
    assert to_html(f"{ESC}[38:2::1:2:3mx") == '<span style="color:#010203">x</span>'


def test_codes_after_an_extended_colour_still_apply():
    html = to_html(f"{ESC}[38;5;208;1mx")

    assert html == '<span class="ansi-bold" style="color:#ff8700">x</span>'


@pytest.mark.parametrize(
    "params",
    ["38;2;300;0;0", "38;5;256", "38;5", "38;9", "1" + "9" * 5000, "38;5;4:3"],
)
def test_malformed_colours_are_ignored_without_error(params):
    assert to_html(f"{ESC}[{params}mx") == "x"


def test_sequence_split_across_feeds_is_buffered():
    converter = AnsiToHtml()

    first = converter.feed(f"before{ESC}[3")
    second = converter.feed("1mred")

    assert first == "before"
    assert second == '<span class="ansi-fg-red">red</span>'


@pytest.mark.parametrize("cut", range(1, len(f"{ESC}[38;5;196m")))
def test_any_cut_through_a_sequence_gives_the_same_html(cut):
    log = f"a{ESC}[38;5;196mb"
    converter = AnsiToHtml()

    pieces = [converter.feed(log[: cut + 1]), converter.feed(log[cut + 1 :]), converter.flush()]

    assert "".join(pieces) == 'a<span style="color:#ff0000">b</span>'


def test_osc_split_across_feeds_is_removed():
    converter = AnsiToHtml()

    html = converter.feed(f"a{ESC}]0;ti") + converter.feed("tle\x07b") + converter.flush()

    assert html == "ab"


def test_state_carries_over_and_each_chunk_closes_its_spans():
    converter = AnsiToHtml()

    first = converter.feed(f"{ESC}[1;34mstart")
    second = converter.feed("still blue\n")
    third = converter.feed(f"{ESC}[0mdone")

    assert first == '<span class="ansi-bold ansi-fg-blue">start</span>'
    assert second == '<span class="ansi-bold ansi-fg-blue">still blue</span>\n'
    assert third == "done"


def test_a_colour_over_several_lines_closes_and_reopens_at_each_line_end():
    html = to_html(f"{ESC}[31mone\ntwo\n\nthree{ESC}[0m four\n")

    assert html.split("\n") == ['<span class="ansi-fg-red">one</span>',
                                 '<span class="ansi-fg-red">two</span>', "",
                                 '<span class="ansi-fg-red">three</span> four', ""]


def test_chunks_are_balanced_even_when_a_colour_stays_on():
    converter = AnsiToHtml()
    chunks = [f"{ESC}[31mone", f"two{ESC}[42m", "three", f"{ESC}[0mfour"]

    for chunk in chunks:
        html = converter.feed(chunk)
        assert html.count("<span") == html.count("</span>")


def test_a_chunk_of_only_escape_codes_emits_no_empty_span():
    converter = AnsiToHtml()

    assert converter.feed(f"{ESC}[31m") == ""
    assert converter.feed("x") == '<span class="ansi-fg-red">x</span>'


@pytest.mark.parametrize(
    "sequence",
    [
        f"{ESC}]0;window title\x07",
        f"{ESC}]8;;https://example.com{ESC}\\",
        f"{ESC}[K",
        f"{ESC}[2J",
        f"{ESC}[H",
        f"{ESC}[10;20H",
        f"{ESC}[?25l",
        f"{ESC}[3A",
        f"{ESC}(B",
        f"{ESC}=",
        f"{ESC}[>4;2m",
    ],
)
def test_non_colour_sequences_are_removed(sequence):
    html = to_html(f"a{sequence}b")

    assert html == "ab"


def test_a_lone_escape_is_dropped_and_the_text_kept():
    assert to_html(f"a{ESC}\nb") == "a\nb"


def test_incomplete_sequence_at_the_very_end_is_dropped():
    assert to_html(f"done{ESC}[3") == "done"


def test_unterminated_osc_does_not_swallow_the_log():
    log = f"{ESC}]0;" + "x" * 5000 + "\nrest of the log"

    assert to_html(log).endswith("\nrest of the log")


def test_crlf_becomes_lf_even_across_chunks():
    converter = AnsiToHtml()

    html = converter.feed("one\r\ntwo\r") + converter.feed("\nthree") + converter.flush()

    assert html == "one\ntwo\nthree"


def test_lone_carriage_return_is_kept():
    assert to_html("50%\r100%\n") == "50%\r100%\n"


def test_trailing_carriage_return_is_emitted_by_flush():
    converter = AnsiToHtml()

    assert converter.feed("progress\r") == "progress"
    assert converter.flush() == "\r"


def test_control_characters_are_not_emitted():
    assert to_html("a\x00b\x07c\td") == "abc\td"


def test_every_class_the_converter_emits_is_styled():
    css = CSS.read_text()
    colours = "black red green yellow blue magenta cyan white".split()
    log = "".join(
        f"{ESC}[{code}mx"
        for code in [1, 2, 3, 4, *range(30, 38), *range(90, 98), *range(40, 48), *range(100, 108)]
    )

    emitted = set(re.findall(r"ansi-[a-z-]+", to_html(log)))

    assert len(emitted) == 4 + 4 * len(colours)
    for cls in emitted:
        assert f".{cls} " in css
