"""The ``artifacts:`` key: its lint, and the matcher runners keep files with (pure, no I/O)."""

import io

import pytest

from ci.pipeline.artifacts import (ALWAYS, MAX_PATTERNS, ON_SUCCESS, Artifacts, Hashed, Matcher,
                                   human_size, path_problem, pattern_problem, shown)
from ci.pipeline.config import ConfigError, Problem, for_cell, parse_pipeline


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        parse_pipeline(text)
    return info.value.problems


def test_a_list_keeps_its_files_after_a_passing_job():
    pipeline = parse_pipeline("steps: [make]\nartifacts: [dist/*.whl, ./reports/, dist/*.whl]\n")
    assert pipeline.artifacts == Artifacts(("dist/*.whl", "reports"), ON_SUCCESS)
    assert parse_pipeline("steps: [make]\nartifacts: report.xml\n").artifacts.paths == (
        "report.xml",)
    assert parse_pipeline("steps: [make]\n").artifacts == Artifacts()


def test_a_mapping_says_when():
    pipeline = parse_pipeline("steps: [make]\nartifacts:\n  paths: [out/]\n  when: always\n")
    assert pipeline.artifacts == Artifacts(("out",), ALWAYS)
    assert for_cell(pipeline, {"PY": "3.12"}).artifacts == pipeline.artifacts


def test_wanted_after_success_or_always():
    assert Artifacts(("a",)).wanted(passed=True)
    assert not Artifacts(("a",)).wanted(passed=False)
    assert Artifacts(("a",), ALWAYS).wanted(passed=False)
    assert not Artifacts((), ALWAYS).wanted(passed=True)


def test_every_problem_is_named_with_its_line():
    text = ("steps: [make]\n"
            "artifacts:\n"
            "  paths: [/etc/passwd, ../up, \"a/../b\", \"\", ., \"x[z-a]\", ok, \"~/x\"]\n"
            "  when: allways\n"
            "  keep: 1\n")
    assert problems_of(text) == [
        Problem("artifacts.paths[0]", 3, "`/etc/passwd` is outside the workspace; artifacts "
                "are files of the job's workspace, so write a path inside the workspace, e.g. "
                "`dist/*.whl` or `reports/`"),
        Problem("artifacts.paths[1]", 3, "`../up` goes up a directory with `..`; artifacts "
                "stay inside the workspace, e.g. `dist/*.whl` or `reports/`"),
        Problem("artifacts.paths[2]", 3, "`a/../b` goes up a directory with `..`; artifacts "
                "stay inside the workspace, e.g. `dist/*.whl` or `reports/`"),
        Problem("artifacts.paths[3]", 3, "is empty; write a path inside the workspace, e.g. "
                "`dist/*.whl` or `reports/`"),
        Problem("artifacts.paths[4]", 3, "`.` names the whole workspace; name files or "
                "directories inside it, e.g. `dist/` (or `**` if you really mean every file)"),
        Problem("artifacts.paths[5]", 3, "`x[z-a]` is not a valid pattern: bad character range "
                "z-a; e.g. `reports/[a-z]*.xml`"),
        Problem("artifacts.paths[7]", 3, "`~/x` is outside the workspace; artifacts are files "
                "of the job's workspace, so write a path inside the workspace, e.g. "
                "`dist/*.whl` or `reports/`"),
        Problem("artifacts.when", 4, "`allways` is not a choice; did you mean `always`?"),
        Problem("artifacts", 5, "`keep` is not a key; valid keys are `paths`, `when`"),
    ]


def test_shapes_and_sizes_that_are_refused():
    assert problems_of("steps: [make]\nartifacts: {when: always}\n") == [Problem(
        "artifacts.paths", 2, "is missing; list the files to keep, e.g. `paths: [dist/*.whl]`")]
    assert problems_of("steps: [make]\nartifacts: {paths: [a], when: [always]}\n") == [Problem(
        "artifacts.when", 2, "a list is not a choice; valid choices are `on_success`, `always`")]
    many = "[" + ", ".join(f"f{n}" for n in range(MAX_PATTERNS + 1)) + "]"
    assert problems_of(f"steps: [make]\nartifacts: {many}\n") == [Problem(
        "artifacts", 2, f"has {MAX_PATTERNS + 1} items, more than the limit of {MAX_PATTERNS}")]
    assert problems_of("steps: [make]\nartifacts: [[dist]]\n")[0].message.startswith(
        "must be a string, found a list")
    escape = problems_of('steps: [make]\nartifacts: ["a\\e[31mb"]\n')[0].message
    assert escape.startswith("`a\\x1b[31mb` is not a path") and "\x1b" not in escape


@pytest.mark.parametrize(("pattern", "path", "kept"), [
    ("dist/*.whl", "dist/app.whl", True),
    ("dist/*.whl", "dist/sub/app.whl", False),  # `*` stays within one directory
    ("dist/*.whl", "dist/app.whl.txt", False),
    ("*.xml", "report.xml", True),
    ("*.xml", "reports/report.xml", False),
    ("**/*.xml", "report.xml", True),  # `**` is any number of directories, none included
    ("**/*.xml", "a/b/c/report.xml", True),
    ("reports/**/junit.xml", "reports/junit.xml", True),
    ("reports/**/junit.xml", "reports/x/y/junit.xml", True),
    ("reports/**/junit.xml", "other/reports/junit.xml", False),
    ("reports/**", "reports/a/b", True),
    ("**", "anything/at/all", True),
    ("dist", "dist/a/b.whl", True),  # a directory keeps everything under it
    ("dist", "distribution/a", False),
    ("test-?.log", "test-1.log", True),
    ("test-?.log", "test-10.log", False),
    ("?", "/", False),
    ("log[0-9].txt", "log7.txt", True),
    ("log[!0-9].txt", "logx.txt", True),
    ("log[!0-9].txt", "log7.txt", False),
    ("a[!b]c", "a/c", False),  # a negated set never matches a `/`
    ("[]]x", "]x", True),
    ("[x", "[x", True),  # an unclosed `[` is a character of the name
    ("a+b(1).txt", "a+b(1).txt", True),  # other regular expression syntax is literal
    ("a.txt", "abtxt", False),
    ("back\\slash", "back\\slash", True),
])
def test_the_matcher(pattern: str, path: str, kept: bool):
    assert (Matcher([pattern]).matching(path) == [0]) is kept


def test_the_matcher_says_which_patterns_keep_a_path():
    matcher = Matcher(["dist/*", "**/*.whl", "docs"])
    assert matcher.matching("dist/app.whl") == [0, 1]
    assert matcher.matching("docs/index.html") == [2]
    assert matcher.matching("src/main.py") == []


@pytest.mark.parametrize(("patterns", "root"), [
    (["dist/*.whl", "dist/link"], "dist"),
    (["reports/unit/a.xml"], "reports/unit/a.xml"),  # a literal path: archive just it
    (["dist/*.whl", "reports/a.xml"], ""),
    (["**/*.xml"], ""),
    (["a/b/[xy]/c", "a/b/d/**"], "a/b"),
    (["build/out", "build/outside"], "build"),  # components, not characters, are shared
])
def test_the_root_is_the_deepest_directory_holding_every_match(patterns, root):
    assert Matcher(patterns).root() == root


@pytest.mark.parametrize("path", [
    "", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a/", "tab\there", "esc\x1b[2J",
    "new\nline", "x" * 1025, "bad\udcffbyte",
])
def test_names_a_runner_may_not_send(path: str):
    assert path_problem(path) is not None
    assert "\x1b" not in path_problem(path) and "\n" not in path_problem(path)


def test_names_a_runner_may_send():
    for path in ("dist/app.whl", "über/ünïcode.txt", ".hidden/x", "a b/c d", "x" * 1024):
        assert path_problem(path) is None
    assert pattern_problem("dist/**/*.whl") is None


def test_sizes_and_shown_names():
    assert [human_size(n) for n in (0, 999, 1024, 1_300_000, 100 * 1024 ** 2, 3 * 1024 ** 3 // 2)] \
        == ["0 bytes", "999 bytes", "1 KiB", "1.2 MiB", "100 MiB", "1.5 GiB"]
    assert shown("a\x1b[31m\nb") == "a\\x1b[31m\\nb"


def test_hashed_counts_and_hashes_what_is_read():
    hashed = Hashed(io.BytesIO(b"hello world"))
    assert hashed.read(5) + hashed.read() == b"hello world"
    assert hashed.size == 11
    assert hashed.sha256 == "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
