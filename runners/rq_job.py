"""What a runner's RQ worker does with a job it finds in Redis: read it as data, never run it
as code it names.

Redis is shared by the server and every runner, and a job in it says which function to
call. RQ would call any dotted name (``os.system``) and, with its default serializer,
unpickle anything; a runner reads jobs as JSON (:data:`ci.pipeline.keys.RQ_SERIALIZER`)
and calls :data:`ci.pipeline.keys.RUN_JOB` only. A job that asks for anything else fails.
"""

from __future__ import annotations

from typing import Any, Callable

from rq.job import Job

from ci.pipeline import keys


class RefusedJob(RuntimeError):
    """A job in the runners' queue names a function a runner does not run."""


class RunnerJob(Job):
    """An RQ job whose function must be the runner's entry point."""

    @property
    def func(self) -> Callable[..., Any] | None:
        if self.func_name != keys.RUN_JOB:
            raise RefusedJob(f"{self.func_name!r} is not {keys.RUN_JOB}, the only function "
                             "a runner calls; Slipway never enqueues another")
        return super().func
