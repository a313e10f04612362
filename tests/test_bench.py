"""`make bench` and `make bench-scale` run one at a time: a second run exits before it starts.

And the disk probe whose flush latency the report states."""

import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from bench.run import bench_lock, disk_sync_us

BASE_DIR = Path(settings.BASE_DIR)

pytestmark = [
    pytest.mark.postgres_only(reason="the lock lives in the bench's PostgreSQL"),
]


@pytest.fixture
def key() -> int:
    """A lock key of the test's own: tests run in parallel, and a real bench may hold the lock."""
    return secrets.randbits(62)


def test_a_second_run_is_refused_while_the_first_holds_the_lock(key):
    # given: a benchmark running; when: another one starts
    with (
        bench_lock("make bench", key=key),
        pytest.raises(SystemExit) as refused,
        bench_lock("make bench-scale", key=key),
    ):
        pytest.fail("two benchmarks ran at once")  # pragma: no cover

    # then: it is told who holds the lock, and the lock is free again once the first one ends
    assert "Another benchmark is running (chatshield make bench, PostgreSQL pid" in str(
        refused.value.code
    )
    with bench_lock("make bench-scale", key=key):
        pass


def test_a_killed_run_leaves_no_lock_behind(key):
    # given: a run that took the lock and was killed without any cleanup of its own
    holder = subprocess.Popen(  # noqa: S603 - a fixed argv and a number
        [
            sys.executable,
            "-c",
            "import sys, time; from bench.run import bench_lock\n"
            "with bench_lock('make bench', key=int(sys.argv[1])):\n"
            "    print('locked', flush=True); time.sleep(60)",
            str(key),
        ],
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SystemExit), bench_lock("make bench", key=key):
            pass  # pragma: no cover
    finally:
        holder.kill()
        holder.wait(timeout=10)

    # then: PostgreSQL drops the lock with the dead run's connection, as soon as its backend
    # sees the connection closed and exits, which happens just after the kill, not with it
    assert lock_taken_within(key, seconds=10)


def lock_taken_within(key: int, *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with bench_lock("make bench", key=key):
                return True
        except SystemExit:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


def test_bench_scale_exits_at_once_when_a_benchmark_is_running():
    # The real key: the one bench/scale.py takes.
    with bench_lock("make bench"):
        done = subprocess.run(
            [sys.executable, "bench/scale.py", "--no-doc"],
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert done.returncode == 1
    assert "Another benchmark is running (chatshield make bench" in done.stderr
    # It stopped before its first step (recreating its database).
    assert "recreating" not in done.stdout + done.stderr


def test_the_disk_probe_times_a_flush_and_leaves_nothing_behind(tmp_path):
    microseconds = disk_sync_us(tmp_path, samples=5)

    assert 0 < microseconds < 10_000_000
    assert list(tmp_path.iterdir()) == []
