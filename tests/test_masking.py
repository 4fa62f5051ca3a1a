"""Secret masking over chunked output."""

import base64

from ci.pipeline.masking import MASK, Masker

SECRET = "hunter2-very-secret"


def run(chunks: list[str], values=(SECRET,)) -> str:
    masker = Masker(list(values))
    return "".join(masker.feed(chunk) for chunk in chunks) + masker.flush()


def test_a_whole_value_is_masked():
    assert run([f"token={SECRET}\n"]) == f"token={MASK}\n"


def test_a_value_split_across_chunks_is_masked():
    for cut in range(1, len(SECRET)):
        out = run(["a " + SECRET[:cut], SECRET[cut:] + " b\n"])
        assert out == f"a {MASK} b\n", cut


def test_base64_forms_are_masked():
    encoded = base64.b64encode(SECRET.encode()).decode()
    assert SECRET not in run([encoded[:7], encoded[7:] + "\n"])
    assert run([encoded + "\n"]) == f"{MASK}\n"


def test_ordinary_output_is_not_held_back():
    masker = Masker([SECRET])
    assert masker.feed("plain line\n") == "plain line\n"
    # Only a possible start of the secret waits for the next chunk.
    assert masker.feed("ends with hun") == "ends with "
    assert masker.feed("gry\n") == "hungry\n"


def test_short_values_and_no_values_pass_through():
    assert run(["abc abc\n"], values=("abc",)) == "abc abc\n"
    assert run(["anything\n"], values=()) == "anything\n"
