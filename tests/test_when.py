"""Tests for ``when`` in ``.slipway.yml``: which builds and steps run."""

import pytest

from ci.pipeline.config import EVENTS, ConfigError, Problem, When, parse_pipeline


def problems_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_pipeline(text)
    return info.value


def test_empty_filter_matches_everything():
    when = When()
    assert all(when.matches(branch=branch, event=event)
               for branch in ("main", "feature/x", None) for event in EVENTS)


@pytest.mark.parametrize(("branch", "expected"), [
    ("main", True), ("release/1.0", True), ("release/1.0/rc", True), ("release", False),
    ("Main", False), ("feature/main", False), (None, False),
])
def test_branch_globs(branch, expected):
    when = When(branch=("main", "release/*"))
    assert when.matches(branch=branch, event="push") is expected


def test_event_filter():
    when = When(event=("push", "tag"))
    assert when.matches(branch="main", event="push")
    assert when.matches(branch=None, event="tag")
    assert not when.matches(branch="main", event="pull_request")


def test_branch_and_event_both_apply():
    when = When(branch=("main",), event=("push",))
    assert when.matches(branch="main", event="push")
    assert not when.matches(branch="main", event="manual")
    assert not when.matches(branch="dev", event="push")


@pytest.mark.parametrize(("status", "after_success", "after_failure"), [
    ((), True, False),
    (("success",), True, False),
    (("failure",), False, True),
    (("success", "failure"), True, True),
])
def test_runs_after(status, after_success, after_failure):
    when = When(status=status)
    assert when.runs_after(False) is after_success
    assert when.runs_after(True) is after_failure


def test_parsed_pipeline_and_step_filters():
    text = """\
when: {branch: main, event: [tag, push, push]}
steps:
  - run: make
  - run: notify
    when: {status: [failure, success], branch: ["release/*", 2024]}
"""
    pipeline = parse_pipeline(text)
    assert pipeline.when == When(branch=("main",), event=("push", "tag"))
    assert pipeline.steps[1].when == When(branch=("release/*", "2024"),
                                          status=("success", "failure"))


def test_unknown_event_suggests_or_lists():
    err = problems_of("when: {event: [deploy, pushh, pull-request]}\nsteps: [make]\n")
    assert [(p.path, p.message) for p in err.problems] == [
        ("when.event[0]", ("`deploy` is not an event; valid events are `push`, `pull_request`, "
                           "`tag`, `manual`, `cron`")),
        ("when.event[1]", "`pushh` is not an event; did you mean `push`?"),
        ("when.event[2]", "`pull-request` is not an event; did you mean `pull_request`?"),
    ]


def test_unknown_status_suggests():
    err = problems_of("steps:\n  - run: make\n    when: {status: failed}\n")
    assert err.problems == [Problem(
        "steps[0].when.status", 3, "`failed` is not a status; did you mean `failure`?")]


def test_status_at_pipeline_level():
    err = problems_of("when:\n  branch: main\n  status: [failure]\nsteps: [make]\n")
    assert str(err) == (
        "`.slipway.yml` line 3, when.status: is only for steps: the pipeline's `when` chooses "
        "which builds run, by `branch` and `event`; move `status` to the steps that should run "
        "after a failure"
    )


def test_branch_glob_that_is_not_a_string():
    text = """\
when:
  branch:
    - [main]
    - {a: b}
    - yes
    - ''
    - refs/heads/dev
steps: [make]
"""
    assert [(p.path, p.line, p.message) for p in problems_of(text).problems] == [
        ("when.branch[0]", 3, 'must be a string, found a list; e.g. `branch: [main, "release/*"]`'),
        ("when.branch[1]", 4, ('must be a string, found a mapping; e.g. '
                              '`branch: [main, "release/*"]`')),
        ("when.branch[2]", 5, '`yes` reads as a boolean; quote it: `"yes"`'),
        ("when.branch[3]", 6, ("is empty; write a branch name such as `main` or a glob such as "
                               "`release/*`")),
        ("when.branch[4]", 7, "`refs/heads/dev` is a ref; write the branch name alone, e.g. `dev`"),
    ]


def test_when_shapes():
    assert str(problems_of("when: main\nsteps: [make]\n")) == (
        "`.slipway.yml` line 1, when: must be a mapping, found a string; "
        "e.g. `when: {branch: main, event: push}`"
    )
    err = problems_of("when: {brnach: main, event: []}\nsteps: [make]\n")
    assert [(p.path, p.message) for p in err.problems] == [
        ("when", "`brnach` is not a key; did you mean `branch`?"),
        ("when.event", ("is empty; list at least one, e.g. `event: [push, pull_request]`, or "
                        "remove the key")),
    ]
