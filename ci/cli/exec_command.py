"""``slipway exec``: run a checkout's pipeline on this machine, as a runner would run it.

The composition root of :mod:`runners.local_exec`: it reads the options, this host's
settings (the default image, the job timeout and limits, the job network) and hands
them to the runner's engine. No server, Redis or database is involved.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from ci.pipeline.events import EVENTS, MANUAL
from ci.settings import load_settings


class ExecUsageError(click.ClickException):
    """A wrong option or an invalid pipeline: exit status 2, as click's usage errors."""

    exit_code = 2


@click.command("exec")
@click.argument("path", default=".",
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--event", type=click.Choice(EVENTS), default=MANUAL, show_default=True,
              help="The event `when` filters see.")
@click.option("--branch", metavar="NAME",
              help="The branch `when` filters see (default: the checked-out branch; none "
                   "for --event tag).")
@click.option("--cell", "cells", multiple=True, metavar="AXIS=VALUE",
              help="Run only the matrix cells with this value; repeat for several axes.")
@click.option("--secret", "secret_names", multiple=True, metavar="NAME",
              help="Give the steps that ask for secret NAME the value of the environment "
                   "variable NAME (masked in the output); repeatable.")
@click.option("--artifacts", "artifacts_dir", metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Copy the files the pipeline's `artifacts` names into DIR (one folder per "
                   "matrix cell when there are several); without it they are not kept.")
@click.option("--no-color", is_flag=True,
              help="Plain output, also on a terminal (as is NO_COLOR=1).")
def exec_command(path: Path, event: str, branch: str | None, cells: tuple[str, ...],
                 secret_names: tuple[str, ...], artifacts_dir: Path | None,
                 no_color: bool) -> None:
    """Run the pipeline of the git checkout at PATH (default: here) on this machine.

    The checkout is used as it is on disk: its tracked files, uncommitted changes
    included, and the untracked files .gitignore does not exclude, are copied into each
    job's workspace. The jobs (one per matrix cell, one after the other) run with the
    runners' engine: the same parsing, steps, services, `when` filters, Docker
    confinement and firewalled job network, so like a runner this needs root and a
    Docker engine, and no Slipway server, Redis or database. The pipeline's cache is
    not used, and its artifacts are kept only with --artifacts. Steps see
    SLIPWAY_EXEC=true.

    \b
    Exit status: 0 the pipeline passed (or its `when` skipped it), 1 it failed,
    2 a wrong option, an invalid .slipway.yml or a host that cannot firewall
    the jobs, 130 stopped with Ctrl-C (its containers are removed).
    """
    from runners import job_network
    from runners.checkout import CheckoutError
    from runners.local_exec.pipeline import JobDefaults, LocalPipeline
    from runners.local_exec.plan import PlanError, make_plan
    from runners.local_exec.terminal import Terminal, wants_color
    from runners.local_exec.tree import WorkingTree
    from runners.settings import load_runner_settings

    if branch is not None and not branch.strip():
        raise ExecUsageError("--branch is empty; give a branch name such as `main`")
    logging.getLogger().setLevel(logging.WARNING)  # the terminal shows the job, not logs
    try:
        tree = WorkingTree.open(path.resolve())
        plan = make_plan(tree, event=event, branch=branch, cells=cells,
                         secret_names=secret_names, environ=os.environ)
        settings, runner_settings = load_settings(), load_runner_settings()
    except (CheckoutError, PlanError, ValueError) as exc:
        raise ExecUsageError(str(exc)) from None
    try:  # as a runner refuses to start where it cannot firewall the jobs' networks
        job_network.check(runner_settings.job_network)
    except job_network.JobNetworkError as exc:
        raise ExecUsageError(f"the jobs cannot run here: {exc}") from None
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:  # a build's output may hold what the locale cannot encode
        reconfigure(errors="replace")
    terminal = Terminal(sys.stdout, wants_color(sys.stdout, no_color, os.environ))
    defaults = JobDefaults(settings.default_image, settings.job_timeout_seconds, settings.limits)
    outcome = LocalPipeline(tree, plan, defaults, runner_settings, terminal,
                            artifacts_dir.resolve() if artifacts_dir else None).run()
    click.get_current_context().exit(outcome.exit_code)
