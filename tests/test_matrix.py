"""Tests for ``matrix`` in ``.slipway.yml``: parsing, expansion and per-cell pipelines."""

import pytest

from ci.pipeline.config import (
    MAX_CELLS,
    ConfigError,
    Matrix,
    Pipeline,
    Problem,
    Service,
    Step,
    allows_failure,
    cell_name,
    expand_matrix,
    for_cell,
    parse_pipeline,
)


def problems_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_pipeline(text)
    return info.value


def cells_of(matrix: str) -> list[dict[str, str]]:
    return expand_matrix(parse_pipeline(f"matrix:\n{matrix}steps: [make]\n"))


def test_no_matrix_is_one_empty_cell():
    pipeline = parse_pipeline("steps: [make]\n")
    assert expand_matrix(pipeline) == [{}]
    assert cell_name({}) == ""
    assert not allows_failure(pipeline, {})
    assert for_cell(pipeline, {}) == pipeline


def test_product_in_file_order_first_axis_slowest():
    assert cells_of("  PYTHON: ['3.11', '3.12']\n  DB: [sqlite, postgres]\n") == [
        {"PYTHON": "3.11", "DB": "sqlite"}, {"PYTHON": "3.11", "DB": "postgres"},
        {"PYTHON": "3.12", "DB": "sqlite"}, {"PYTHON": "3.12", "DB": "postgres"},
    ]


def test_values_become_strings_as_written():
    assert cells_of("  V: [3.10, 3, true, text, '007']\n") == [
        {"V": "3.10"}, {"V": "3"}, {"V": "true"}, {"V": "text"}, {"V": "007"},
    ]


def test_a_single_value_is_a_list():
    assert cells_of("  PYTHON: '3.12'\n") == [{"PYTHON": "3.12"}]


def test_exclude_then_include():
    text = """\
  PYTHON: ['3.11', '3.12']
  DB: [sqlite, postgres]
  exclude: [{PYTHON: 3.11, DB: postgres}, {DB: sqlite, PYTHON: '3.12'}]
  include: [{DB: sqlite, PYTHON: '3.13'}]
"""
    cells = cells_of(text)
    assert cells == [
        {"PYTHON": "3.11", "DB": "sqlite"}, {"PYTHON": "3.12", "DB": "postgres"},
        {"PYTHON": "3.13", "DB": "sqlite"},
    ]
    assert [list(cell) for cell in cells] == [["PYTHON", "DB"]] * 3
    assert [cell_name(cell) for cell in cells] == [
        "PYTHON=3.11 DB=sqlite", "PYTHON=3.12 DB=postgres", "PYTHON=3.13 DB=sqlite",
    ]


def test_a_partial_exclude_drops_every_match():
    text = "  A: [x, y]\n  B: [1, 2, 3]\n  exclude: [{B: 2}]\n"
    assert cells_of(text) == [{"A": "x", "B": "1"}, {"A": "x", "B": "3"},
                              {"A": "y", "B": "1"}, {"A": "y", "B": "3"}]


def test_allow_failures_match_every_given_pair():
    text = """\
matrix:
  PYTHON: ['3.11', '3.12']
  DB: [sqlite, postgres]
  include: [{PYTHON: '3.13', DB: sqlite}]
  allow_failures: [{DB: postgres, PYTHON: '3.12'}, {PYTHON: '3.13'}]
steps: [make]
"""
    pipeline = parse_pipeline(text)
    assert pipeline.matrix == Matrix(
        axes={"PYTHON": ("3.11", "3.12"), "DB": ("sqlite", "postgres")},
        include=({"PYTHON": "3.13", "DB": "sqlite"},),
        allow_failures=({"PYTHON": "3.12", "DB": "postgres"}, {"PYTHON": "3.13"}),
    )
    allowed = [cell_name(cell) for cell in expand_matrix(pipeline)
               if allows_failure(pipeline, cell)]
    assert allowed == ["PYTHON=3.12 DB=postgres", "PYTHON=3.13 DB=sqlite"]


def test_for_cell_substitutes_images_and_env():
    text = """\
image: slipway/python:${PYTHON}
matrix: {PYTHON: ['3.12'], DB: [postgres]}
env: {DB: explicit, URL: "${DB}://db/${OTHER}", WHICH: "py${PYTHON}"}
services:
  db: {image: "${DB}:15", env: {NAME: "${DB}"}}
steps:
  - run: make
    image: tools/${DB}:${PYTHON}
    env: {STEP: "${PYTHON}"}
"""
    pipeline = parse_pipeline(text)
    (cell,) = expand_matrix(pipeline)
    job = for_cell(pipeline, cell)
    assert job == Pipeline(
        image="slipway/python:3.12",
        env={"PYTHON": "3.12", "DB": "explicit", "URL": "postgres://db/${OTHER}",
             "WHICH": "py3.12"},
        timeout_seconds=None,
        steps=(Step("make", "make", image="tools/postgres:3.12", env={"STEP": "3.12"}),),
        matrix=pipeline.matrix,
        services=(Service("db", "postgres:15", {"NAME": "postgres"}, None),),
    )
    assert list(job.env) == ["PYTHON", "DB", "URL", "WHICH"]
    assert pipeline.image == "slipway/python:${PYTHON}"


def test_empty_axis():
    for axis in ("PYTHON: []", "PYTHON:"):
        err = problems_of(f"matrix:\n  {axis}\nsteps: [make]\n")
        assert str(err) == (
            "`.slipway.yml` line 2, matrix.PYTHON: has no values; list at least one, "
            'e.g. `PYTHON: ["3.11", "3.12"]`, or remove the axis'
        )


def test_matrix_without_axes():
    err = problems_of("matrix: {include: [{A: 1}]}\nsteps: [make]\n")
    assert err.problems == [Problem(
        "matrix", 1, 'has no axes; name at least one with its values, e.g. '
        '`matrix: {PYTHON: ["3.11", "3.12"]}`, or remove `matrix`',
    )]


def test_more_than_max_cells():
    err = problems_of("matrix:\n  A: [1, 2, 3, 4, 5, 6, 7, 8, 9]\n  B: [1, 2, 3, 4, 5, 6, 7, 8]\n"
                      "steps: [make]\n")
    assert str(err) == (
        "`.slipway.yml` line 2, matrix: makes 72 jobs, more than the limit of 64; remove values, "
        "or `exclude` combinations you do not need"
    )
    assert MAX_CELLS == 64


def test_excludes_bring_it_under_the_limit():
    text = "  A: [1, 2, 3, 4, 5, 6, 7, 8, 9]\n  B: [1, 2, 3, 4, 5, 6, 7, 8]\n  exclude: [{A: 9}]\n"
    assert len(cells_of(text)) == 64


def test_includes_count_towards_the_limit():
    err = problems_of("matrix:\n  A: [" + ", ".join(map(str, range(64))) + "]\n"
                      "  include: [{A: x}]\nsteps: [make]\n")
    assert "makes 65 jobs, more than the limit of 64" in str(err)


def test_huge_product_is_refused_without_expanding():
    axes = "".join(f"  A{i}: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n" for i in range(16))
    err = problems_of("matrix:\n" + axes + "steps: [make]\n")
    assert "has more than 1024 combinations of axis values before `exclude`" in str(err)


def test_exclude_naming_an_unknown_axis_or_value():
    text = """\
matrix:
  PYTHON: ['3.11', '3.12']
  exclude: [{PYTON: '3.11'}, {PYTHON: '3.10'}, {}, python]
steps: [make]
"""
    assert problems_of(text).problems == [
        Problem("matrix.exclude[0]", 3,
                "`PYTON` is not an axis of the matrix; did you mean `PYTHON`?"),
        Problem("matrix.exclude[1].PYTHON", 3,
                "`3.10` is not a value of `PYTHON`; valid values are `3.11`, `3.12`"),
        Problem("matrix.exclude[2]", 3, "must map axis names to values, is empty; e.g. "
                '`exclude: [{PYTHON: "3.11", DB: postgres}]`'),
        Problem("matrix.exclude[3]", 3, "must map axis names to values, found a string; e.g. "
                '`exclude: [{PYTHON: "3.11", DB: postgres}]`'),
    ]


def test_exclude_everything():
    err = problems_of("matrix:\n  A: [1]\n  exclude: [{A: 1}]\nsteps: [make]\n")
    assert "`exclude` removes every combination, so there is no job to run" in str(err)


def test_include_must_name_every_axis_and_be_new():
    text = """\
matrix:
  PYTHON: ['3.11']
  DB: [sqlite]
  include:
    - {PYTHON: '3.13'}
    - {PYTHON: '3.11', DB: sqlite}
    - {PYTHON: '3.13', DB: sqlite}
    - {PYTHON: '3.13', DB: sqlite}
    - {PYTHON: '3.14', DB: sqlite, OS: linux}
steps: [make]
"""
    assert [(p.path, p.line, p.message) for p in problems_of(text).problems] == [
        ("matrix.include[0]", 5, "misses `DB`; an included job names a value for every axis"),
        ("matrix.include[4]", 9, ("`OS` is not an axis of the matrix; valid axes are `PYTHON`, "
                                  "`DB`")),
    ]


def test_repeated_include():
    text = """\
matrix:
  PYTHON: ['3.11']
  include: [{PYTHON: '3.11'}, {PYTHON: '3.13'}, {PYTHON: '3.13'}]
steps: [make]
"""
    assert [(p.path, p.message) for p in problems_of(text).problems] == [
        ("matrix.include[0]", "`PYTHON=3.11` is already a job of the matrix; remove this entry"),
        ("matrix.include[2]", "`PYTHON=3.13` is already a job of the matrix; remove this entry"),
    ]


def test_allow_failures_must_name_existing_values_and_match_a_job():
    text = """\
matrix:
  PYTHON: ['3.11', '3.12']
  DB: [sqlite, postgres]
  exclude: [{PYTHON: '3.11', DB: postgres}]
  include: [{PYTHON: '3.13', DB: sqlite}]
  allow_failures: [{DB: postgress}, {PYTHON: '3.13'}, {PYTHON: '3.11', DB: postgres}]
steps: [make]
"""
    assert [(p.path, p.message) for p in problems_of(text).problems] == [
        ("matrix.allow_failures[0].DB", ("`postgress` is not a value of `DB`; did you mean "
                                         "`postgres`?")),
    ]
    fixed = text.replace("postgress", "postgres")
    assert [(p.path, p.message) for p in problems_of(fixed).problems] == [
        ("matrix.allow_failures[2]", ("`PYTHON=3.11 DB=postgres` matches no job of the matrix; "
                                      "check the values, or remove this entry")),
    ]


def test_bad_axes():
    text = """\
matrix:
  my-axis: [a]
  PYTHON: ['3.11', 3.11]
  OS: [[linux]]
  excludes: [{PYTHON: '3.11'}]
  NAME: ["two\\nlines"]
steps: [make]
"""
    assert [(p.path, p.line, p.message) for p in problems_of(text).problems] == [
        ("matrix.my-axis", 2, ("`my-axis` is not a valid axis name; an axis is also an "
                               "environment variable, so use letters, digits and `_`, not "
                               "starting with a digit")),
        ("matrix.PYTHON[1]", 3, "`3.11` is listed twice (also on line 3); keep one"),
        ("matrix.OS[0]", 4, "must be a string, number or boolean, found a list"),
        ("matrix.excludes", 5, "`excludes` is not a key; did you mean `exclude`?"),
        ("matrix.NAME[0]", 6, "`two\\nlines` must be one line of printable text; it names a job"),
    ]


def test_matrix_must_be_a_mapping():
    err = problems_of("matrix: [PYTHON]\nsteps: [make]\n")
    assert "matrix: must be a mapping of axis names to lists of values, found a list" in str(err)


def test_image_variables_must_name_axes():
    text = """\
image: python:${PYTHN}
matrix: {PYTHON: ['3.12']}
services:
  db: {image: "postgres:${PG}"}
steps: [make]
"""
    assert problems_of(text).problems == [
        Problem("image", 1, "`${PYTHN}` is not a matrix axis; did you mean `${PYTHON}`?"),
        Problem("services.db.image", 4, "`${PG}` is not a matrix axis; the axes are `PYTHON`"),
    ]
    err = problems_of("image: python:${PYTHON}\nsteps: [make]\n")
    assert str(err) == ("`.slipway.yml` line 1, image: `${PYTHON}` is not a matrix axis; this "
                        "pipeline has no `matrix`, so write the image out")


def test_image_variables_only_in_braces():
    err = problems_of("image: python:$PYTHON\nmatrix: {PYTHON: ['3.12']}\nsteps: [make]\n")
    assert "contains `$`, which an image reference cannot; `${NAME}` may name a matrix axis" in (
        str(err))


def test_every_cell_must_make_a_valid_image():
    text = """\
matrix: {PYTHON: ['3.12', '3 13', 'X']}
steps:
  - run: make
    image: python:${PYTHON}
"""
    assert problems_of(text).problems == [Problem(
        "steps[0].image", 4, "for the job `PYTHON=3 13`, `python:3 13` contains whitespace, which "
        "an image reference cannot; write only the image, e.g. `python:3.12`",
    )]
    err = problems_of("image: ${IMAGE}\nmatrix: {IMAGE: [python, Python]}\nsteps: [make]\n")
    assert err.problems[0].message.startswith(
        "for the job `IMAGE=Python`, `Python` is not an image reference")
