"""The build cache: saved after a passing build, restored into the next one."""

import os
import time

import pytest

from runners.cache import BuildCache
from tests.conftest import IMAGE, log_of

pytestmark = pytest.mark.docker

PIPELINE = f"""\
image: {IMAGE}
cache: [.venv, ~/.cache/slipway-demo]
steps:
  - name: venv
    run: |
      if [ -x .venv/bin/python ]; then echo "venv from cache"; else python3 -m venv .venv; fi
      mkdir -p ~/.cache/slipway-demo && date +%s%N >> ~/.cache/slipway-demo/runs
      echo "runs so far: $(wc -l < ~/.cache/slipway-demo/runs)"
"""


def test_a_second_build_restores_the_cache_and_is_faster(build_with, workers, resources):
    first = build_with({".slipway.yml": PIPELINE})
    second = build_with({"README.md": "again\n"})
    assert (first.status, second.status) == ("passed", "passed")
    first_log, second_log = log_of(resources, first.jobs[0]), log_of(resources, second.jobs[0])
    assert "no cache yet for this branch" in first_log
    assert "runs so far: 1" in first_log and "cache saved" in first_log
    assert "cache restored" in second_log
    assert "venv from cache" in second_log
    assert "runs so far: 2" in second_log
    step_time = [(job.steps[0].finished_at - job.steps[0].started_at).total_seconds()
                 for job in (first.jobs[0], second.jobs[0])]
    assert step_time[1] < step_time[0]


def test_a_new_branch_starts_from_the_default_branch_cache(build_with, workers, resources):
    build_with({".slipway.yml": PIPELINE})
    feature = build_with({"x.txt": "1\n"}, branch="feature")
    assert "venv from cache" in log_of(resources, feature.jobs[0])


def test_the_cache_evicts_the_least_recently_used_entries(tmp_path):
    class Files:
        """An archiver over host folders: the same contract as the executor's."""

        def read_archive(self, path, into):
            into.write_bytes(b"x" * 600)
            return True

        def write_archive(self, directory, tar):
            pass

    cache = BuildCache(tmp_path, limit_bytes=1500)
    now = time.time()
    for age, key in ((20, "old"), (10, "middle")):
        cache.save(Files(), (".venv",), key, lambda _line: None)
        os.utime(tmp_path / key, (now - age, now - age))
    cache.save(Files(), (".venv",), "new", lambda _line: None)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["middle", "new"]
