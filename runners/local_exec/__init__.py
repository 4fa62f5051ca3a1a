"""``slipway exec``: a checkout's pipeline run on this machine by the runners' own engine.

The same parsing, matrix, ``when`` filters, job loop (:class:`runners.worker.JobRun`),
Docker executor and confinement as a runner, with no server, Redis or database: the
checkout on disk is copied into each job's workspace (:mod:`.tree`), the matrix cells
chosen (:mod:`.cells`), each job reports to the terminal (:mod:`.terminal`) through the
loop's :class:`~runners.reporter.Reporter` seam (:mod:`.job`), and :mod:`.pipeline`
runs the jobs one after the other and sums them up.
"""
