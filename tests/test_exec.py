"""`slipway exec`: a checkout's pipeline run by the runners' engine on this machine.

Each test runs the real command in a process of its own, as a user would, on a real git
checkout and the real Docker engine, with neither Redis nor a database configured (and
nothing answering where the local Redis would be), which proves it needs neither.
"""

from __future__ import annotations

import os
import pty
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from runners.checkout import CheckoutError
from runners.images import ensure_image
from runners.local_exec.cells import CellError, select_cells
from runners.local_exec.job import LABEL_EXEC
from tests.conftest import IMAGE, SLIPWAY, GitRepo
from tests.polling import wait_for

pytestmark = pytest.mark.docker

REDIS_IMAGE = "slipway/redis:7"
TOKEN = "s3cr3t-exec-t0ken"
# Sends PING to the job's `cache` service and prints the answer.
PING = ("python3 -c \"import socket; c = socket.create_connection(('cache', 6379)); "
        "c.sendall(b'PING\\r\\n'); print('answer', c.recv(20))\"")


class Exec:
    """Runs ``slipway exec`` in ``checkout`` with an environment free of Slipway's servers."""

    def __init__(self, checkout: GitRepo, data_dir: Path) -> None:
        self.checkout = checkout
        self.data_dir = data_dir
        unset = ("SLIPWAY_REDIS_URL", "SLIPWAY_DATABASE_URL", "NO_COLOR")
        self.env = {name: value for name, value in os.environ.items() if name not in unset}
        self.env["SLIPWAY_DATA_DIR"] = str(data_dir)

    def command(self, *args: str) -> list[str]:
        return [SLIPWAY, "exec", *args]

    def __call__(self, *args: str, env: dict[str, str] | None = None
                 ) -> subprocess.CompletedProcess:
        done = subprocess.run(self.command(*args), cwd=self.checkout.path, capture_output=True,
                              text=True, env={**self.env, **(env or {})}, timeout=300,
                              check=False)
        assert not (self.data_dir / "slipway.db").exists(), "slipway exec made a database"
        return done


def redis_answers() -> bool:
    """Whether something accepts connections where Slipway looks for its local Redis."""
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.fixture
def checkout(tmp_path) -> GitRepo:
    return GitRepo(tmp_path / "project")


@pytest.fixture
def slipway_exec(checkout, tmp_path) -> Exec:
    assert not redis_answers(), ("something answers on 127.0.0.1:6379, where Slipway looks for "
                                 "its local Redis; these tests prove exec needs none")
    return Exec(checkout, tmp_path / "data")


@pytest.fixture
def redis_image(docker_client, tmp_path_factory) -> str:
    ensure_image(docker_client, REDIS_IMAGE, tmp_path_factory.mktemp("images"))
    return REDIS_IMAGE


def left_behind(docker_client, checkout: GitRepo) -> list[str]:
    """The containers and networks of this checkout's exec jobs that still exist."""
    label = {"label": f"{LABEL_EXEC}={checkout.path}"}
    return ([container.name for container in docker_client.containers.list(
                all=True, filters=label, ignore_removed=True)]
            + [network.name for network in docker_client.networks.list(filters=label)])


def test_a_passing_pipeline_shows_each_step_and_leaves_nothing(checkout, slipway_exec,
                                                               docker_client, tmp_path):
    checkout.commit({".slipway.yml": f"""\
image: {IMAGE}
artifacts: [out/]
steps:
  - name: first
    run: echo "one from $SLIPWAY_EVENT on $SLIPWAY_BRANCH"
  - name: second
    run: python3 -c "print('two')" && mkdir out && echo two > out/two.txt && ln -s /etc out/etc
"""})
    kept = tmp_path / "kept"
    done = slipway_exec("--artifacts", str(kept))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert out.index("--- step 1: first ---\none from manual on main\n") < out.index(
        "--- step 1: first passed: exit code 0 in ") < out.index(
        "--- step 2: second ---\ntwo\n") < out.index("--- step 2: second passed: exit code 0 in ")
    assert "=== job 1/1: default passed in " in out
    assert "artifacts: kept 1 file (4 bytes): out/two.txt (4 bytes)" in out
    assert [path.name for path in kept.rglob("*")] == ["out", "two.txt"]
    assert (kept / "out" / "two.txt").read_text() == "two\n"
    assert "pipeline passed in " in out
    assert "\x1b[" not in out, "output to a pipe is plain"
    assert left_behind(docker_client, checkout) == []


def test_a_failing_step_fails_the_pipeline_and_skips_the_rest(checkout, slipway_exec,
                                                              docker_client):
    checkout.commit({".slipway.yml": f"""\
image: {IMAGE}
steps:
  - name: build
    run: echo built
  - name: break
    run: exit 3
  - name: later
    run: echo LATER-RAN
  - name: report
    run: echo reported
    when: {{status: [failure]}}
"""})
    done = slipway_exec()
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "--- step 2: break failed: exit code 3 in " in out
    assert "--- step 3: later skipped ---" in out and "LATER-RAN" not in out
    assert "--- step 4: report ---\nreported\n" in out
    assert "[slipway] step 'break' exited with code 3" in out
    assert "pipeline failed in " in out
    assert left_behind(docker_client, checkout) == []


MATRIX = f"""\
image: {IMAGE}
matrix:
  A: ["1", "2"]
  B: [x, y]
steps:
  - run: echo "cell $A-$B"
"""


def test_a_matrix_runs_every_cell_and_cell_runs_one(checkout, slipway_exec):
    checkout.commit({".slipway.yml": MATRIX})
    every = slipway_exec()
    assert every.returncode == 0, every.stdout + every.stderr
    for number, cell in enumerate(["1-x", "1-y", "2-x", "2-y"], start=1):
        a, b = cell.split("-")
        assert f"=== job {number}/4: A={a} B={b} ===" in every.stdout
        assert f"\ncell {cell}\n" in every.stdout
    assert "pipeline passed in " in every.stdout and ": 4 passed" in every.stdout

    one = slipway_exec("--cell", "A=2", "--cell", "B=y")
    assert one.returncode == 0, one.stdout + one.stderr
    assert "=== job 1/1: A=2 B=y ===" in one.stdout and "\ncell 2-y\n" in one.stdout
    assert one.stdout.count("\ncell ") == 1


def test_a_cell_allowed_to_fail_does_not_fail_the_pipeline(checkout, slipway_exec):
    checkout.commit({".slipway.yml": f"""\
image: {IMAGE}
matrix:
  B: [x, y]
  allow_failures: [{{B: y}}]
steps:
  - run: test "$B" != y
"""})
    done = slipway_exec()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "=== job 2/2: B=y (allowed to fail) ===" in done.stdout
    assert "=== job 2/2: B=y failed in " in done.stdout
    assert "pipeline passed in " in done.stdout and ": 1 passed, 1 failed" in done.stdout


def test_an_unknown_cell_is_a_usage_error_naming_the_valid_ones(checkout, slipway_exec):
    checkout.commit({".slipway.yml": MATRIX})
    value = slipway_exec("--cell", "A=3")
    assert value.returncode == 2
    assert "`3` is not a value of A; its values are `1`, `2`" in value.stderr
    axis = slipway_exec("--cell", "C=1")
    assert axis.returncode == 2
    assert "`C` is not an axis of the matrix; its axes are `A`, `B`" in axis.stderr
    malformed = slipway_exec("--cell", "A")
    assert malformed.returncode == 2 and "is not AXIS=VALUE" in malformed.stderr
    assert value.stdout == axis.stdout == malformed.stdout == "", "nothing ran"


def test_a_cell_pick_keeps_the_matrix_order_and_refuses_an_excluded_combination() -> None:
    cells = [{"A": "1", "B": "x"}, {"A": "2", "B": "x"}, {"A": "2", "B": "y"}]
    assert select_cells(cells, {"B": "x"}) == cells[:2]
    with pytest.raises(CellError, match="no cell of the matrix has `A=1 B=y`"):
        select_cells(cells, {"A": "1", "B": "y"})
    with pytest.raises(CellError, match="has no matrix"):
        select_cells([{}], {"A": "1"})


def test_when_filters_see_the_event_and_branch_asked_for(checkout, slipway_exec):
    checkout.commit({".slipway.yml": f"""\
image: {IMAGE}
steps:
  - run: echo always
  - name: on push
    run: echo PUSHED
    when: {{event: push}}
  - name: on release
    run: echo RELEASED
    when: {{branch: "release/*"}}
"""})
    manual = slipway_exec()
    assert manual.returncode == 0, manual.stdout + manual.stderr
    assert "--- step 2: on push skipped ---" in manual.stdout and "PUSHED" not in manual.stdout
    assert "--- step 3: on release skipped ---" in manual.stdout
    pushed = slipway_exec("--event", "push", "--branch", "release/1.0")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert "\nPUSHED\n" in pushed.stdout and "\nRELEASED\n" in pushed.stdout

    subprocess.run(["git", "checkout", "-q", "-b", "release/2"], cwd=checkout.path, check=True)
    on_branch = slipway_exec()
    assert "event manual on branch release/2" in on_branch.stdout
    assert "\nRELEASED\n" in on_branch.stdout


def test_a_pipeline_its_when_skips_runs_nothing(checkout, slipway_exec):
    checkout.commit({".slipway.yml": f"""\
image: {IMAGE}
when: {{event: push}}
steps:
  - run: echo RAN
"""})
    done = slipway_exec()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped: the pipeline's `when` does not match event 'manual' on branch 'main'" \
        in done.stdout
    assert "RAN" not in done.stdout and "--- step" not in done.stdout


def test_a_service_answers_the_steps_by_name(checkout, slipway_exec, redis_image, docker_client):
    checkout.commit({".slipway.yml": f"""\
image: {IMAGE}
services:
  cache: {{image: {redis_image}, ready: "redis-cli ping"}}
steps:
  - name: ping
    run: {PING}
"""})
    done = slipway_exec()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[slipway] service cache is ready" in done.stdout
    assert "answer b'+PONG\\r\\n'" in done.stdout
    assert "--- service cache ---" in done.stdout and "Ready to accept connections" in done.stdout
    assert left_behind(docker_client, checkout) == []


SECRET_PIPELINE = f"""\
image: {IMAGE}
steps:
  - name: deploy
    secrets: [TOKEN]
    run: |
      echo "token=$TOKEN"
      printf %s "$TOKEN" | base64
  - name: other
    run: echo "other sees [${{TOKEN:-nothing}}]"
"""


def test_a_secret_reaches_its_step_masked(checkout, slipway_exec):
    checkout.commit({".slipway.yml": SECRET_PIPELINE})
    done = slipway_exec("--secret", "TOKEN", env={"TOKEN": TOKEN})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "token=****" in done.stdout
    assert "other sees [nothing]" in done.stdout
    assert TOKEN not in done.stdout + done.stderr
    assert "czNjcjN0LWV4ZWMtdDBrZW4" not in done.stdout, "its base64 is masked too"


def test_secrets_wrongly_given_or_missing_are_usage_errors(checkout, slipway_exec):
    checkout.commit({".slipway.yml": SECRET_PIPELINE})
    unset = slipway_exec("--secret", "TOKEN")
    assert unset.returncode == 2
    assert "--secret TOKEN: the environment has no variable TOKEN" in unset.stderr
    missing = slipway_exec()
    assert missing.returncode == 2
    assert "step 'deploy' needs the secret TOKEN: pass `--secret TOKEN`" in missing.stderr
    unknown = slipway_exec("--secret", "TOKNE", env={"TOKNE": TOKEN})
    assert unknown.returncode == 2
    assert "no step of the pipeline asks for it; its steps ask for `TOKEN`" in unknown.stderr
    assert TOKEN not in unknown.stderr
    assert unset.stdout == missing.stdout == unknown.stdout == "", "nothing ran"


def test_the_checkout_runs_as_it_is_on_disk(checkout, slipway_exec):
    checkout.commit({"notes.txt": "committed\n", "gone.txt": "soon deleted\n",
                     ".gitignore": "ignored.txt\n", ".slipway.yml": "steps: [echo old]\n"})
    (checkout.path / "notes.txt").write_text("changed, not committed\n")
    (checkout.path / "new.txt").write_text("never added\n")
    (checkout.path / "ignored.txt").write_text("ignored\n")
    (checkout.path / "gone.txt").unlink()
    (checkout.path / ".slipway.yml").write_text(f"""\
image: {IMAGE}
steps:
  - run: |
      cat notes.txt new.txt
      test ! -e ignored.txt && echo "no ignored file"
      test ! -e gone.txt && echo "no deleted file"
""")
    done = slipway_exec()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "uncommitted changes included" in done.stdout
    assert "changed, not committed\nnever added\nno ignored file\nno deleted file\n" in done.stdout


def test_links_out_of_the_checkout_are_never_followed(checkout, slipway_exec, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("HOST-SECRET\n")
    checkout.commit({"docs/readme.txt": "docs\n", ".slipway.yml": f"""\
image: {IMAGE}
steps:
  - run: |
      test -L leak && echo "leak is a link"
      cat leak || echo "leak leads nowhere"
      cat docs/secret.txt docs/readme.txt || echo "no docs"
"""})
    (checkout.path / "leak").symlink_to(outside / "secret.txt")
    (checkout.path / "docs" / "readme.txt").unlink()
    (checkout.path / "docs").rmdir()
    (checkout.path / "docs").symlink_to(outside)
    done = slipway_exec()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "leak is a link\n" in done.stdout and "leak leads nowhere\n" in done.stdout
    assert "HOST-SECRET" not in done.stdout


@pytest.mark.parametrize("target", ["outside", "/etc/passwd", "/proc/kmsg"])
def test_a_pipeline_that_is_a_link_is_refused_unread(checkout, slipway_exec, tmp_path, target):
    (tmp_path / "outside").write_text("steps: [echo HOST-FILE]\n")
    checkout.commit({"README": "hi\n"})
    (checkout.path / ".slipway.yml").symlink_to(tmp_path / target)
    done = slipway_exec()
    assert done.returncode == 2
    assert "`.slipway.yml` is a symbolic link; it must be a regular file" in done.stderr
    assert done.stdout == ""


def test_an_invalid_pipeline_shows_the_linters_messages(checkout, slipway_exec):
    checkout.commit({".slipway.yml": "steps:\n  - name: a\n    run: echo\n    tiemout: 3\n"
                                     "timeout: soon\n"})
    done = slipway_exec()
    assert done.returncode == 2
    assert "`.slipway.yml` line 4, steps[0]: `tiemout` is not a key" in done.stderr
    assert "`.slipway.yml` line 5, timeout: `soon` is not a duration" in done.stderr
    assert done.stdout == ""


def test_a_folder_outside_any_checkout_is_a_usage_error(slipway_exec, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    done = slipway_exec(str(plain))
    assert done.returncode == 2
    assert f"{plain} is not in a git checkout" in done.stderr


def test_a_working_tree_open_fails_clearly_on_a_bare_repository(tmp_path):
    from runners.local_exec.tree import WorkingTree

    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "bare.git")], check=True)
    with pytest.raises(CheckoutError, match="is a bare repository"):
        WorkingTree.open(tmp_path / "bare.git")


def test_ctrl_c_stops_the_job_removes_its_containers_and_starts_no_other(
        checkout, slipway_exec, docker_client, tmp_path):
    checkout.commit({".slipway.yml": f"""\
image: {IMAGE}
matrix:
  N: ["1", "2"]
steps:
  - run: echo started; sleep 300
"""})
    log_path = tmp_path / "exec.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(slipway_exec.command(), cwd=checkout.path,
                                   env=slipway_exec.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: "\nstarted\n" in log_path.read_text(), timeout=120,
                     what="the step's first line")
            assert left_behind(docker_client, checkout), "the job's container runs"
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=120) == 130
        finally:
            if process.poll() is None:
                process.kill()
    out = log_path.read_text()
    assert "[slipway] canceled by Ctrl-C" in out
    assert "not started: canceled by Ctrl-C" in out and "=== job 2/2" not in out
    assert "pipeline canceled in " in out
    assert left_behind(docker_client, checkout) == []


def test_a_reader_gone_away_stops_nothing_and_leaves_nothing(checkout, slipway_exec,
                                                             docker_client, tmp_path):
    checkout.commit({".slipway.yml": f"image: {IMAGE}\nsteps: [echo one, echo two]\n"})
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:
        process = subprocess.Popen(slipway_exec.command(), cwd=checkout.path,
                                   env=slipway_exec.env, stdout=subprocess.PIPE, stderr=stderr)
        assert process.stdout.readline().startswith(b"[slipway] ")
        process.stdout.close()  # as `slipway exec | head -1` does
        assert process.wait(timeout=120) == 0
    assert errors.read_text() == ""
    assert left_behind(docker_client, checkout) == []


def run_in_a_terminal(slipway_exec: Exec, *args: str, env: dict[str, str] | None = None) -> str:
    """What ``slipway exec`` writes to a terminal (a pseudo-terminal here)."""
    main, secondary = pty.openpty()
    process = subprocess.Popen(slipway_exec.command(*args), cwd=slipway_exec.checkout.path,
                               env={**slipway_exec.env, **(env or {})}, stdout=secondary,
                               stderr=secondary)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal is closed once the process has ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert process.wait(timeout=60) == 0
    return b"".join(chunks).decode()


def test_a_terminal_gets_colour_unless_asked_not_to(checkout, slipway_exec):
    checkout.commit({".slipway.yml": "when: {event: push}\nsteps: [echo never]\n"})
    assert "\x1b[36m[slipway] skipped: " in run_in_a_terminal(slipway_exec)
    assert "\x1b[" not in run_in_a_terminal(slipway_exec, "--no-color")
    assert "\x1b[" not in run_in_a_terminal(slipway_exec, env={"NO_COLOR": "1"})
