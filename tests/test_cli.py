"""The ``slipway`` command against a real database, Redis and git repository."""

import pytest

from ci.pipeline import fair_queue


def test_repo_add_list_remove(cli, git_repo):
    added = cli("repo", "add", "octo/project", "--forge", "github", "--clone-url",
                str(git_repo.path), "--secret", "s3cret")
    assert added.exit_code == 0
    assert "webhook URL: http://ci.test/hooks/github" in added.output
    listed = cli("repo", "list")
    assert f"octo/project\tgithub\t{git_repo.path}\tno builds" in listed.output
    again = cli("repo", "add", "octo/project", "--clone-url", "x", "--secret", "s")
    assert again.exit_code == 1
    assert "octo/project is already registered" in again.output
    assert cli("repo", "remove", "octo/project").exit_code == 0
    assert "no repositories" in cli("repo", "list").output
    missing = cli("repo", "remove", "octo/project")
    assert missing.exit_code == 1
    assert "octo/project is not registered" in missing.output


@pytest.mark.parametrize("name, message", [
    ("no-slash", "'no-slash' is not a repository name; use OWNER/NAME"),
    ("api/repos", "the owner name 'api' is reserved"),
    ("a/b;rm -rf", "is not a repository name"),
])
def test_repo_add_rejects_bad_names(cli, name, message):
    result = cli("repo", "add", name, "--clone-url", "/tmp/x", "--secret", "s")
    assert result.exit_code == 1
    assert message in result.output


def test_trigger_builds_the_branch_head_or_a_sha(cli, git_repo, redis_client):
    first = git_repo.commit({"a.txt": "1"})
    cli("repo", "add", "octo/project", "--clone-url", str(git_repo.path), "--secret", "s")
    result = cli("trigger", "octo/project")
    assert result.exit_code == 0
    assert f"build #1 of {first[:12]} queued: http://ci.test/octo/project/builds/1" in result.output
    second = git_repo.commit({"a.txt": "2"})
    assert f"of {second[:12]}" in cli("trigger", "octo/project", "--branch", "main").output
    assert f"of {first[:12]}" in cli("trigger", "octo/project", "--sha", first).output
    assert len(fair_queue.snapshot(redis_client).held()) == 3  # one on RQ's queue, two in line
    unknown = cli("trigger", "octo/project", "--branch", "nope")
    assert unknown.exit_code == 1
    assert "branch 'nope' does not exist in" in unknown.output
    bad_sha = cli("trigger", "octo/project", "--sha", "$(id)")
    assert "is not a full commit sha" in bad_sha.output


def test_secret_set_list_remove(cli, git_repo):
    cli("repo", "add", "octo/project", "--clone-url", str(git_repo.path), "--secret", "s")
    assert cli("secret", "set", "octo/project", "DEPLOY_TOKEN",
               stdin="v4lue-from-stdin\n").exit_code == 0
    listed = cli("secret", "list", "octo/project")
    assert listed.output == "DEPLOY_TOKEN\n"
    assert "v4lue" not in listed.output
    bad = cli("secret", "set", "octo/project", "lower", stdin="x" * 8)
    assert bad.exit_code == 1 and "is not a secret name" in bad.output
    assert cli("secret", "remove", "octo/project", "DEPLOY_TOKEN").exit_code == 0
    assert cli("secret", "list", "octo/project").output == ""


def test_repo_limits_stay_within_the_maxima(cli, git_repo, monkeypatch):
    cli("repo", "add", "octo/project", "--clone-url", str(git_repo.path), "--secret", "s")
    assert cli("repo", "limits", "octo/project").output == (
        "octo/project: memory 2g, cpus 2, pids 1024, jobs at once no limit\n")
    changed = cli("repo", "limits", "octo/project", "--memory", "4g", "--pids", "2048")
    assert changed.output == "octo/project: memory 4g, cpus 2, pids 2048, jobs at once no limit\n"
    too_much = cli("repo", "limits", "octo/project", "--memory", "64g")
    assert too_much.exit_code == 1
    assert "memory 64g is above the maximum of 8g (SLIPWAY_MAX_JOB_MEMORY)" in too_much.output
    monkeypatch.setenv("SLIPWAY_MAX_JOB_PIDS", "1500")
    assert "pids 2048 must be between 16 and 1500" in cli(
        "repo", "limits", "octo/project", "--pids", "2048").output
    assert "is not an amount of memory" in cli("repo", "limits", "octo/project",
                                               "--memory", "lots").output
