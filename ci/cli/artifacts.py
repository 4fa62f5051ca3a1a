"""``slipway artifacts``: the files a build's jobs kept, listed or copied out, on the host
that holds the artifact store (the pages and ``GET /api/…/artifacts`` serve them too).

Like every command it calls the services, not HTTP; the connections come from the root
command (``ci.cli.main``) as the context object.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from ci import store
from ci.artifacts import artifact_store
from ci.artifacts.store import ArtifactError
from ci.cli.repos import Connect, repo_or_fail
from ci.store.models import Job


@click.command("artifacts")
@click.argument("full_name")
@click.argument("number", type=click.IntRange(min=1))
@click.option("--job", "job_number", type=click.IntRange(min=1), metavar="M",
              help="Only job M of the build (default: every job).")
@click.option("--into", "into", type=click.Path(file_okay=False, path_type=Path),
              metavar="DIR", help="Copy the files into DIR/JOB/PATH instead of listing them.")
@click.pass_obj
def artifacts(connect: Connect, full_name: str, number: int, job_number: int | None,
              into: Path | None) -> None:
    """List (or, with --into, copy out) the artifacts of build NUMBER of FULL_NAME: those
    of each job's latest attempt, as the build page shows them."""
    ctx = connect()
    files = artifact_store(ctx.settings)
    with ctx.sessions() as session:
        repo = repo_or_fail(session, full_name)
        build = store.get_build(session, repo, number)
        if build is None:
            raise click.ClickException(f"{full_name} has no build #{number}")
        jobs = [job for job in build.jobs if job_number in (None, job.number)]
        if not jobs:
            raise click.ClickException(f"build #{number} of {full_name} has no job "
                                       f"{job_number}; it has {len(build.jobs)}")
        for job in jobs:
            kept = store.job_artifacts(session, job.id, job.attempt)
            if not kept:
                click.echo(f"job {job.number}: {_none_kept(job)}")
            for artifact in kept:
                if into is None:
                    click.echo(f"job {job.number}\t{artifact.size}\t{artifact.sha256}\t"
                               f"{artifact.path}")
                    continue
                target = into / str(job.number) / artifact.path
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with files.open(job.id, job.attempt, artifact.path) as source, \
                            target.open("wb") as copy:
                        shutil.copyfileobj(source, copy)
                except (FileNotFoundError, ArtifactError) as exc:
                    raise click.ClickException(
                        f"job {job.number}: {artifact.path} is not in the store ({exc})"
                    ) from None
                click.echo(f"job {job.number}: {artifact.path} -> {target}")


def _none_kept(job: Job) -> str:
    if job.pruned_at is not None:
        return f"no artifacts: removed on {job.pruned_at:%Y-%m-%d} (SLIPWAY_KEEP_DAYS)"
    return "no artifacts"
