"""Tests for the ``.slipway.yml`` parser and linter."""

import re
from pathlib import Path

import pytest

from ci.pipeline.config import (
    CONFIG_FILE,
    Artifacts,
    DEFAULT_PIPELINE_HELP,
    ConfigError,
    Matrix,
    Pipeline,
    Problem,
    Service,
    Step,
    When,
    default_pipeline,
    parse_duration,
    parse_pipeline,
)

# The example of docs/pipeline.md: every key at once.
FULL = """\
image: slipway/python:${PYTHON}
matrix:
  PYTHON: ["3.11", "3.12"]
  DB: [sqlite, postgres]
  exclude: [{PYTHON: "3.11", DB: postgres}]
  include: [{PYTHON: "3.13", DB: sqlite}]
  allow_failures: [{DB: postgres}]
env: {PYTHONDONTWRITEBYTECODE: "1"}
services:
  redis: {image: slipway/redis:7}
  postgres:
    image: slipway/postgres:15
    env: {POSTGRES_PASSWORD: test}
    ready: pg_isready -U postgres
    ready_timeout: 90s
cache: [.venv, ~/.cache/pip]
artifacts: {paths: [dist/*.whl, reports/], when: always}
when: {branch: [main, "release/*"], event: [push, pull_request, tag, manual]}
timeout: 20m
steps:
  - name: install
    run: pip install -e .[test]
  - name: test
    image: slipway/python:3.12
    run: pytest -q
    env: {EXTRA: "1"}
    when: {status: [success]}
  - name: deploy
    run: ./deploy.sh
    secrets: [DEPLOY_TOKEN]
    when: {branch: main, event: push}
"""


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
    err = problems_of("steps: [make]\ndeploy: [prod]\n")
    assert str(err) == (
        "`.slipway.yml` line 2: `deploy` is not a key; valid keys are `image`, `matrix`, "
        "`env`, `services`, `cache`, `artifacts`, `when`, `timeout`, `steps`"
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


def test_billion_laughs_is_refused_before_it_expands():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    err = problems_of("\n".join(lines) + "\nsteps: [make]\n")
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
    "python:3.12", "slipway/python:3.11", "registry.example.com/org/app:1.0", "localhost:5000/app",
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


def test_every_key():
    pipeline = parse_pipeline(FULL)
    assert pipeline == Pipeline(
        image="slipway/python:${PYTHON}",
        env={"PYTHONDONTWRITEBYTECODE": "1"},
        timeout_seconds=1200,
        steps=(
            Step("install", "pip install -e .[test]"),
            Step("test", "pytest -q", image="slipway/python:3.12", env={"EXTRA": "1"},
                 when=When(status=("success",))),
            Step("deploy", "./deploy.sh", secrets=("DEPLOY_TOKEN",),
                 when=When(branch=("main",), event=("push",))),
        ),
        matrix=Matrix(
            axes={"PYTHON": ("3.11", "3.12"), "DB": ("sqlite", "postgres")},
            exclude=({"PYTHON": "3.11", "DB": "postgres"},),
            include=({"PYTHON": "3.13", "DB": "sqlite"},),
            allow_failures=({"DB": "postgres"},),
        ),
        services=(
            Service("redis", "slipway/redis:7", {}, None),
            Service("postgres", "slipway/postgres:15", {"POSTGRES_PASSWORD": "test"},
                    "pg_isready -U postgres", 90),
        ),
        cache=(".venv", "~/.cache/pip"),
        when=When(branch=("main", "release/*"), event=("push", "pull_request", "tag", "manual")),
        artifacts=Artifacts(("dist/*.whl", "reports"), "always"),
    )


def test_new_fields_default_to_nothing():
    pipeline = parse_pipeline("steps: [make]\n")
    assert (pipeline.matrix, pipeline.services, pipeline.cache, pipeline.when) == (
        None, (), (), When())
    (step,) = pipeline.steps
    assert (step.image, step.env, step.secrets, step.when) == (None, {}, (), When())


def test_unknown_keys_in_every_mapping_suggest_the_closest():
    text = """\
services:
  db: {image: postgres, redy: pg_isready}
steps:
  - run: make
    imgae: python
    secret: [TOKEN]
"""
    assert [(p.path, p.line, p.message) for p in problems_of(text).problems] == [
        ("services.db", 2, "`redy` is not a key; did you mean `ready`?"),
        ("steps[0]", 5, "`imgae` is not a key; did you mean `image`?"),
        ("steps[0]", 6, "`secret` is not a key; did you mean `secrets`?"),
    ]


def test_step_image_and_env_are_checked():
    text = "steps:\n  - run: make\n    image: 'python 3'\n    env: {1X: a, OK: [b]}\n"
    assert [(p.path, p.line) for p in problems_of(text).problems] == [
        ("steps[0].image", 3), ("steps[0].env", 4), ("steps[0].env.OK", 4),
    ]


def test_secrets_single_name_is_a_list():
    (step,) = parse_pipeline("steps:\n  - run: a\n    secrets: TOKEN\n").steps
    assert step.secrets == ("TOKEN",)


@pytest.mark.parametrize(("secrets", "message"), [
    ("{TOKEN: x}", "must be a list, found a mapping; e.g. `secrets: [DEPLOY_TOKEN]`"),
    ("[[TOKEN]]", "must be a string, found a list; e.g. `secrets: [DEPLOY_TOKEN]`"),
    ("[deploy_token]", ("`deploy_token` is not a secret name; secret names are upper-case "
                        "letters, digits and `_`, not starting with a digit; "
                        "write `DEPLOY_TOKEN`")),
    ("[1TOKEN]", ("`1TOKEN` is not a secret name; secret names are upper-case letters, digits "
                  "and `_`, not starting with a digit, e.g. `DEPLOY_TOKEN`")),
    ("[]", "is empty; list at least one, e.g. `secrets: [DEPLOY_TOKEN]`, or remove the key"),
])
def test_bad_secrets(secrets, message):
    (problem,) = problems_of(f"steps:\n  - run: a\n    secrets: {secrets}\n").problems
    assert problem.line == 3
    assert problem.path.startswith("steps[0].secrets")
    assert problem.message == message


def test_secret_also_in_env():
    err = problems_of("steps:\n  - run: a\n    env: {TOKEN: x}\n    secrets: [TOKEN]\n")
    assert str(err) == ("`.slipway.yml` line 4, steps[0].secrets: `TOKEN` is also set in this "
                        "step's `env`; remove it from one of them")


def test_services():
    text = "services:\n  db:\n    image: postgres:15\n    ready: pg_isready\n    env: {A: 1}\n"
    (service,) = parse_pipeline(text + "steps: [make]\n").services
    assert service == Service("db", "postgres:15", {"A": "1"}, "pg_isready", 60)


def test_service_name_must_be_a_dns_label():
    err = problems_of("services:\n  My_DB: {image: postgres}\nsteps: [make]\n")
    assert str(err) == (
        "`.slipway.yml` line 2, services.My_DB: `My_DB` is not a valid service name; steps "
        "reach a service at its name, so it must be a DNS label: at most 63 lowercase letters, "
        "digits and `-`, not starting or ending with `-`, e.g. `my-db`"
    )


@pytest.mark.parametrize("name", ["-db", "db-", "a" * 64, "db.local", "Redis"])
def test_more_bad_service_names(name):
    err = problems_of(f"services:\n  {name}: {{image: redis}}\nsteps: [make]\n")
    assert "is not a valid service name" in str(err)


def test_service_image_with_a_semicolon():
    err = problems_of("services:\n  db: {image: 'postgres;rm -rf /'}\nsteps: [make]\n")
    assert err.problems == [Problem(
        "services.db.image", 2, "`postgres;rm -rf /` contains `;`, which an image reference "
        "cannot; write only the image, e.g. `python:3.12`",
    )]


def test_service_problems():
    text = """\
services:
  db: {env: {A: [1]}, ready_timeout: 2h}
  cache: redis
  web: {image: nginx, ready: "", ready_timeout: 0}
steps: [make]
"""
    assert [(p.path, p.line) for p in problems_of(text).problems] == [
        ("services.db.image", 2), ("services.db.ready_timeout", 2),
        ("services.db.env.A", 2), ("services.db.ready_timeout", 2), ("services.cache", 3),
        ("services.web.ready", 4), ("services.web.ready_timeout", 4),
    ]
    assert "has no effect without `ready`" in str(problems_of(text))
    assert "`2h` is more than the 10m limit" in str(problems_of(text))


def test_services_must_be_a_mapping():
    err = problems_of("services: [redis]\nsteps: [make]\n")
    assert "must be a mapping from service names to their settings, found a list" in str(err)


def test_too_many_services():
    services = "".join(f"  s{i}: {{image: redis}}\n" for i in range(11))
    err = problems_of("services:\n" + services + "steps: [make]\n")
    assert "has 11 services, more than the limit of 10" in str(err)


def test_cache_paths_are_normalized():
    text = "cache: [./.venv/, ~/.cache//pip, .venv, node_modules]\nsteps: [make]\n"
    assert parse_pipeline(text).cache == (".venv", "~/.cache/pip", "node_modules")
    assert parse_pipeline("cache: .venv\nsteps: [make]\n").cache == (".venv",)


@pytest.mark.parametrize(("path", "found"), [
    ("../x", "`../x` goes up a directory with `..`"),
    ("a/../../b", "goes up a directory with `..`"),
    ("/etc", ("`/etc` is an absolute path; a cache path is inside the workspace, e.g. `.venv`, "
              "or in the home directory, e.g. `~/.cache/pip`")),
    ("~root/.cache", "is not in your home directory; write `~/`"),
    ("~/../x", "goes up a directory with `..`"),
    (".", "names a whole directory"),
    ("'~'", "names a whole directory"),
    ("''", "is not a path"),
    ("[a]", "must be a string, found a list"),
])
def test_bad_cache_paths(path, found):
    (problem,) = problems_of(f"cache: [{path}]\nsteps: [make]\n").problems
    assert (problem.path, problem.line) == ("cache[0]", 1)
    assert found in problem.message


def test_too_many_cache_paths():
    err = problems_of("cache: [" + ", ".join(f"d{i}" for i in range(21)) + "]\nsteps: [make]\n")
    assert "has 21 items, more than the limit of 20" in str(err)


def test_ten_thousand_keys_are_refused_past_the_cap():
    for text in ("steps: [a]\n" + "".join(f"key{i}: {i}\n" for i in range(10_000)),
                 "env:\n" + "".join(f"  K{i}: {i}\n" for i in range(10_000)) + "steps: [a]\n"):
        err = problems_of(text)
        assert str(err) == (
            "`.slipway.yml`: the file has more than 10000 values (keys, list items and "
            "scalars); a pipeline needs a few hundred at most, so move data into files in "
            "the repository"
        )


def test_many_unknown_keys_are_all_reported():
    err = problems_of("steps: [a]\n" + "".join(f"key{i}: {i}\n" for i in range(4000)))
    assert len(err.problems) == 4000


def test_default_pipeline_for_a_python_project():
    for files in ({"pyproject.toml", "README.md"}, {"setup.py"},
                  {"pyproject.toml", "requirements.txt"}):
        pipeline = default_pipeline(files)
        assert [step.name for step in pipeline.steps] == ["install", "test"]
        assert pipeline.steps[0].run.startswith(
            "python3 -m pip install -e '.[test]' || python3 -m pip install -e .\n")
        assert "python3 -m pip install pytest" in pipeline.steps[0].run
        assert pipeline.steps[1].run == "python3 -m pytest -q"
        assert pipeline.env["PIP_BREAK_SYSTEM_PACKAGES"] == "1"
        assert pipeline.image is None and pipeline.timeout_seconds is None


def test_default_pipeline_for_requirements_only():
    pipeline = default_pipeline({"requirements.txt", "main.py"})
    assert pipeline.steps[0].run.startswith("python3 -m pip install -r requirements.txt\n")
    assert pipeline.steps[1].run == "python3 -m pytest -q"


def test_no_default_pipeline_for_other_projects():
    assert default_pipeline({"package.json", "Makefile"}) is None
    assert default_pipeline(set()) is None
    assert DEFAULT_PIPELINE_HELP.startswith("there is no `.slipway.yml` at the repository root")
    example = DEFAULT_PIPELINE_HELP.split("\n\n", 1)[1]
    assert parse_pipeline(example).steps == (Step("test", "make test"),)


def test_examples_in_the_docs():
    doc = (Path(__file__).parent.parent / "docs" / "pipeline.md").read_text()
    blocks = re.findall(r"```(\w*)\n(.*?)```", doc, re.DOTALL)
    every_key = blocks[1][1]
    assert parse_pipeline(every_key) == parse_pipeline(FULL.replace("90s", "60s"))
    wrong, answer = blocks[2][1], blocks[3][1]
    assert str(problems_of(wrong)) + "\n" == answer
    for language, block in blocks:
        if language == "yaml" and block != wrong:
            text = block if "steps" in block else block + "steps: [make]\n"
            parse_pipeline(text)
