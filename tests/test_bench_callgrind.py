"""BENCH_CALLGRIND: instructions per request, counted by callgrind inside operator.call."""

import shutil
import subprocess
import sys

import pytest

from bench.run import callgrind_command, callgrind_totals, instructions_print


def test_each_part_is_read_in_order(tmp_path):
    out = tmp_path / "callgrind.out"
    for part, total in enumerate([1_500_000, 2_300_000], start=1):
        (tmp_path / f"callgrind.out.{part}").write_text(
            f"version: 1\npart: {part}\nsummary: {total}\n\ntotals: {total}\n"
        )

    assert callgrind_totals(out, 2) == [1_500_000, 2_300_000]


def test_routes_are_printed_as_multiples_of_the_baseline(capsys):
    instructions_print(
        [
            {"name": "baseline (bare DRF)", "instructions": 1_000_000.0},
            {"name": "GET /widget/me", "instructions": 1_500_000.0},
        ]
    )

    out = capsys.readouterr().out
    assert "1,500,000  1.50 x baseline" in out


@pytest.mark.skipif(not shutil.which("valgrind"), reason="valgrind is not installed")
def test_only_the_work_inside_operator_call_is_counted_once_per_call(tmp_path):
    # The same loop, twice as long in the second call; what runs outside is not counted.
    program = (
        "import operator\n"
        "def work(n):\n"
        "    return sum(i * i for i in range(n))\n"
        "work(300_000)\n"
        "operator.call(work, 10_000)\n"
        "operator.call(work, 20_000)\n"
    )
    out = tmp_path / "callgrind.out"
    subprocess.run(  # noqa: S603 - valgrind on this interpreter and a literal program
        callgrind_command(out, [sys.executable, "-c", program]),
        check=True,
        capture_output=True,
        timeout=120,
    )

    first, second = callgrind_totals(out, 2)
    assert 1.9 < second / first < 2.1
