"""Summarise a py-spy profile of `bench/cost.py`: where each request's time goes.

    BENCH_PYSPY=/tmp/stacks.txt BENCH_COST_ONLY=/widget/me \
        .venv/bin/python bench/run.py --only me --duration 1 --cost-calls 5000 --no-report
    .venv/bin/python bench/stacks.py /tmp/stacks.txt

py-spy samples the cost run (`record -f raw`: one line per distinct stack with its sample count)
without tracing overhead, so unlike cProfile it does not inflate functions that make many small
calls. Only samples taken inside a timed request count. Prints the functions with the most samples
of their own, then those with the most samples anywhere on the stack, as shares of all samples.
py-spy samples wall-clock time, so waiting on PostgreSQL or Redis shows up under the psycopg or
redis frame that waits.
"""

import argparse
import collections
from pathlib import Path

SITE_PACKAGES = "/site-packages/"
# The cost run's timed call; `--inside "WSGIHandler.__call__"` reads a profile of a served worker.
REQUEST_FRAME = "main.<locals>.call "
WARMUP_FRAME = "main.<locals>.warm "


def frame_short(frame: str) -> str:
    name, _, location = frame.partition(" (")
    if SITE_PACKAGES in location:
        location = location.split(SITE_PACKAGES, 1)[1]
    return f"{name} ({location}" if location else name


def summarise(path: Path, *, own_top: int, cumulative_top: int, inside: str = REQUEST_FRAME) -> str:
    own: collections.Counter[str] = collections.Counter()
    cumulative: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [frame_short(frame) for frame in stack.split(";")]
        if not any(frame.startswith(inside) for frame in frames) or any(
            frame.startswith(WARMUP_FRAME) for frame in frames
        ):
            continue  # start-up, warm-up, bookkeeping, the profiler's own work
        samples = int(count)
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            cumulative[frame] += samples
    if not total:
        return "no samples inside a request"
    lines = [f"{total} samples inside requests", "", "own time:"]
    lines += [f"{n * 100 / total:5.1f}%  {frame}" for frame, n in own.most_common(own_top)]
    lines += ["", "anywhere on the stack:"]
    lines += [
        f"{n * 100 / total:5.1f}%  {frame}" for frame, n in cumulative.most_common(cumulative_top)
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stacks", type=Path, help="py-spy record -f raw output")
    parser.add_argument("--own", type=int, default=25, help="rows of own time")
    parser.add_argument("--cumulative", type=int, default=50, help="rows of cumulative time")
    parser.add_argument(
        "--inside", default=REQUEST_FRAME, help="count only stacks with a frame starting so"
    )
    args = parser.parse_args()
    print(
        summarise(args.stacks, own_top=args.own, cumulative_top=args.cumulative, inside=args.inside)
    )


if __name__ == "__main__":
    main()
