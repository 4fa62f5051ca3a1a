"""Tests for the ``.slipway.yml`` parser and linter."""

import time

import pytest

from ci.pipeline.config import (
    CONFIG_FILE,
    ConfigError,
    Pipeline,
    Problem,
    Step,
    parse_duration,
    parse_pipeline,
)


def problems_of(text: str | bytes) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_pipeline(text)
    return info.value


def test_minimal_pipeline():
    assert parse_pipeline("steps:\n  - run: make test\n") == Pipeline(
        image=None, env={}, timeout_seconds=None, steps=(Step("make test", "make test"),)
    )


def test_full_pipeline():
    text = """\
image: slipway/python:3.11
env: {GREETING: hello}
timeout: 10m
steps:
  - name: test
    run: |
      pip install -e .
      python3 -m pytest -q
  - echo done
"""
    pipeline = parse_pipeline(text.encode())
    assert pipeline.image == "slipway/python:3.11"
    assert pipeline.env == {"GREETING": "hello"}
    assert pipeline.timeout_seconds == 600
    assert pipeline.steps == (
        Step("test", "pip install -e .\npython3 -m pytest -q\n"),
        Step("echo done", "echo done"),
    )


def test_step_name_defaults_to_first_command_shortened():
    text = "steps:\n  - run: |\n\n      python3 -m pytest --maxfail=1 tests/unit\n      make\n"
    (step,) = parse_pipeline(text).steps
    assert step.name == "python3 -m pytest --maxfail=1 tests/unit"
    (step,) = parse_pipeline("steps: [python3 -m pytest --maxfail=1 --durations=10]\n").steps
    assert step.name == "python3 -m pytest --maxfail=1 --duratio…"
    assert len(step.name) == 40


def test_env_values_become_strings():
    text = "env: {A: 1, B: true, C: 3.10, D: no, E: text, F: '007'}\nsteps: [env]\n"
    assert parse_pipeline(text).env == {
        "A": "1", "B": "true", "C": "3.10", "D": "false", "E": "text", "F": "007",
    }


def test_bad_env_names_and_values():
    err = problems_of("env:\n  MY-VAR: 1\n  LIST: [1]\n  EMPTY:\nsteps: [env]\n")
    assert [(p.path, p.line) for p in err.problems] == [
        ("env", 2), ("env.LIST", 3), ("env.EMPTY", 4),
    ]
    assert "`MY-VAR` is not a valid variable name" in str(err)
    assert 'write `EMPTY: ""` for an empty string' in str(err)


@pytest.mark.parametrize(("value", "seconds"), [
    ("10m", 600), ("1h30m", 5400), ("45s", 45), ("90", 90), (90, 90), (" 2h ", 7200),
    ("1h1m1s", 3661), (0, 0),
])
def test_parse_duration(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", [
    "", "ten", "10x", "1m1h", "-5", -5, "1.5h", "10 m", True, "1" * 20, "٣m",
])
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError, match="is not a duration; write seconds like `90`"):
        parse_duration(value)


def test_timeout_out_of_range():
    err = problems_of("timeout: 0\nsteps: [a]\n")
    assert str(err) == (
        "`.slipway.yml` line 1, timeout: `0` must be more than zero; write e.g. `30m`, "
        "or remove `timeout` to use the server's default"
    )
    assert "is more than the 24h limit" in str(problems_of("timeout: 25h\nsteps: [a]\n"))
    assert parse_pipeline("timeout: 24h\nsteps: [a]\n").timeout_seconds == 86400


def test_bad_timeout_names_line_and_value():
    err = problems_of("steps: [a]\ntimeout: soon\n")
    assert err.problems == [Problem(
        "timeout", 2,
        "`soon` is not a duration; write seconds like `90`, or numbers with units h, m and s "
        "like `10m`, `1h30m` or `45s`",
    )]


def test_unknown_top_level_key_suggests_closest():
    err = problems_of("steps: [make]\nstep: [make]\n")
    assert str(err) == "`.slipway.yml` line 2: `step` is not a key; did you mean `steps`?"


def test_unknown_key_without_close_match_lists_valid_keys():
    err = problems_of("steps: [make]\nservices: [redis]\n")
    assert str(err) == (
        "`.slipway.yml` line 2: `services` is not a key; "
        "valid keys are `image`, `env`, `timeout`, `steps`"
    )


def test_unknown_step_key():
    err = problems_of("steps:\n  - run: make\n    nmae: build\n")
    assert err.problems == [Problem("steps[0]", 3, "`nmae` is not a key; did you mean `name`?")]


def test_run_must_be_a_string():
    err = problems_of("steps:\n  - name: build\n    run: [make, make test]\n")
    assert str(err) == (
        "`.slipway.yml` line 3, steps[0].run: must be a string (a shell script), found a list; "
        "put several commands in a block: `run: |`, then one command per line"
    )


def test_step_problems():
    err = problems_of("steps:\n  - name: a\n  - run: '  '\n  - 42\n  - name: [x]\n    run: y\n")
    assert [(p.path, p.line) for p in err.problems] == [
        ("steps[0].run", 2), ("steps[1].run", 3), ("steps[2]", 4), ("steps[3].name", 5),
    ]
    assert "steps[0].run: is missing; every step needs `run:`" in str(err)


def test_missing_steps():
    err = problems_of("image: python:3.12\n")
    assert err.problems == [Problem(
        "steps", None, "is missing; list the commands to run, e.g. `steps: [make test]`"
    )]
    assert str(err).startswith("`.slipway.yml`, steps: is missing")


@pytest.mark.parametrize("text", ["steps: []\n", "steps:\n"])
def test_empty_steps(text):
    err = problems_of(text)
    assert err.problems[0].path == "steps"
    assert err.problems[0].line == 1


def test_steps_must_be_a_list():
    err = problems_of("steps:\n  test:\n    run: make\n")
    assert "steps: must be a list, found a mapping; start each step with `- `" in str(err)


def test_too_many_steps():
    err = problems_of("steps: [" + ", ".join(f"echo {i}" for i in range(201)) + "]\n")
    assert "has 201 steps, more than the limit of 200" in str(err)


def test_duplicate_step_names():
    err = problems_of(
        "steps:\n  - name: test\n    run: a\n  - name: test\n    run: b\n  - make\n  - make\n"
    )
    assert str(err) == (
        "`.slipway.yml` line 4, steps[1].name: `test` is already the name of steps[0] (line 2); "
        "step names must be unique, so rename one\n"
        "`.slipway.yml` line 7, steps[3]: `make` is already the name of steps[2] (line 6); "
        "step names must be unique, so give one of them a `name:`"
    )


def test_repeated_key():
    err = problems_of("steps: [a]\nimage: python\nsteps: [b]\n")
    assert str(err) == "`.slipway.yml` line 3: `steps` is given twice (also on line 1); keep one"


def test_yaml_syntax_error_names_line():
    err = problems_of("steps:\n  - run: make\n   name: x: y\n")
    (problem,) = err.problems
    assert problem.line == 3
    assert problem.message.startswith("invalid YAML at column")


@pytest.mark.parametrize("text", ["", "   \n", "# nothing yet\n", "---\n", b""])
def test_empty_file(text):
    err = problems_of(text)
    assert str(err) == (
        "`.slipway.yml`: the file is empty; a minimal pipeline is `steps: [make test]`"
    )


def test_top_level_must_be_a_mapping():
    err = problems_of("- make test\n")
    assert err.problems == [Problem(
        "", 1, "the top level must be a mapping with a `steps` key, found a list; "
        "for example `steps: [make test]`",
    )]


def test_several_documents():
    err = problems_of("steps: [a]\n---\nsteps: [b]\n")
    assert err.problems[0].line == 2
    assert "a second YAML document starts here" in str(err)


def test_not_utf8():
    err = problems_of(b"steps:\n  - echo caf\xe9\n")
    assert str(err) == (
        "`.slipway.yml` line 2: the file is not UTF-8 (byte 0xe9); save it as UTF-8"
    )


def test_utf8_with_byte_order_mark():
    assert parse_pipeline("\ufeffsteps: [make]\n".encode()).steps == (Step("make", "make"),)


def test_control_character():
    err = problems_of("steps:\n  - echo \x00\n")
    assert err.problems[0].line == 2
    assert "U+0000" in str(err)


def test_too_large():
    err = problems_of("steps: [make]\n" + "#" * 300_000)
    assert "more than the 256 KiB limit" in str(err)


def test_billion_laughs_is_refused_quickly():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    started = time.monotonic()
    err = problems_of("\n".join(lines) + "\nsteps: [make]\n")
    assert time.monotonic() - started < 1
    assert "expands to more than 10000 values through anchors and aliases" in str(err)


def test_anchor_inside_itself_is_refused():
    err = problems_of("steps: &s [make, *s]\n")
    assert "nested more than 32 levels deep" in str(err)


def test_deep_nesting_is_refused():
    err = problems_of("steps: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested more than 32 levels deep" in str(err)


def test_aliases_within_limits_are_expanded():
    text = "env: &e {A: '1'}\nsteps:\n  - &s echo hi\n  - name: again\n    run: *s\n"
    pipeline = parse_pipeline(text)
    assert pipeline.steps == (Step("echo hi", "echo hi"), Step("again", "echo hi"))


@pytest.mark.parametrize("image", [
    "python:3.12", "slipway/python:3.11", "ghcr.io/org/app:1.0", "localhost:5000/app",
    "registry.example.com/team/app@sha256:" + "a" * 64,
])
def test_valid_images(image):
    assert parse_pipeline(f"image: {image}\nsteps: [make]\n").image == image


@pytest.mark.parametrize(("image", "found"), [
    ("'python;rm -rf /'", "contains `;`"),
    ("'python 3'", "contains whitespace"),
    ('"python\\nrm"', "contains whitespace"),
    ("'$(id)'", "contains `$`"),
    ("Python:3", "is not an image reference"),
    ("''", "is empty"),
    ("[python]", "must be a string"),
])
def test_bad_images(image, found):
    err = problems_of(f"image: {image}\nsteps: [make]\n")
    assert err.problems[0].path == "image"
    assert err.problems[0].line == 1
    assert found in err.problems[0].message


def test_several_problems_reported_at_once():
    err = problems_of("image: 'a;b'\ntimeout: forever\nsteps:\n  - run: [x]\n")
    assert len(err.problems) >= 2
    lines = str(err).splitlines()
    assert lines[0].startswith("`.slipway.yml` line 1, image:")
    assert lines[1].startswith("`.slipway.yml` line 2, timeout:")
    assert lines[2].startswith("`.slipway.yml` line 4, steps[0].run:")


def test_filename_appears_in_messages():
    with pytest.raises(ConfigError, match=r"^`ci.yml` line 1: `stpes` is not a key") as info:
        parse_pipeline("stpes: [a]\nsteps: [a]\n", filename="ci.yml")
    assert info.value.filename == "ci.yml"
    assert CONFIG_FILE == ".slipway.yml"
    assert isinstance(info.value, ValueError)
