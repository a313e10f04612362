"""Per-request cost of each benchmarked route, in-process: Python CPU time and SQL queries.

Run by bench/run.py after the wrk runs, with the benchmark's environment, against the same
database: `python bench/cost.py ROUTES.json`. Each route is called through Django's test client
(the full middleware stack, PostgreSQL and Redis, one thread), and the process's own CPU time is
divided by the number of calls. Unlike req/s on a shared machine, this barely moves when other
processes are busy, so it is the number to compare between runs. Prints one JSON list.
"""

import json
import operator
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

WARMUP_CALLS = 20


def main() -> None:
    routes = json.loads(Path(sys.argv[1]).read_text())
    if only := os.environ.get("BENCH_COST_ONLY"):
        # A profile of one route alone (BENCH_PYSPY): the others, the baseline too, are not called.
        routes = [r for r in routes if name_matches(r["name"], only)]
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 200

    import django

    django.setup()

    from django.db import connection
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    profile = os.environ.get("BENCH_PROFILE", "")

    def call(route: dict):
        path = random.choice(route["paths"]) if route["paths"] else route["path"]
        headers = {k: v for k, v in route["headers"].items() if k.lower() != "content-type"}
        body = route["body"]
        if body is None:
            return client.generic(route["method"], path, headers=headers)
        body = body.replace("{n}", str(random.randint(1, 1000)))
        return client.generic(
            route["method"], path, body, content_type="application/json", headers=headers
        )

    def warm(route: dict):
        # Its own frame, so that bench/stacks.py leaves the warm-up (and the first request's
        # imports) out of a py-spy profile.
        return call(route)

    costs = []
    for route in routes:
        for _ in range(WARMUP_CALLS):
            status = warm(route).status_code
            if not 200 <= status < 300:
                raise RuntimeError(f"{route['name']} answered {status}")
        queries = []

        def count(execute, sql, params, many, context, queries=queries):
            queries.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            call(route)

        def measured(route=route):
            for _ in range(calls):
                call(route)

        started = time.process_time()
        # Through operator.call, which nothing else here calls: under BENCH_CALLGRIND, callgrind
        # counts instructions only inside it and writes one profile part per route.
        operator.call(measured)
        cpu_ms = (time.process_time() - started) / calls * 1000
        if profile and name_matches(route["name"], profile):
            profile_print(route["name"], measured)
        costs.append({"name": route["name"], "cpu_ms": cpu_ms, "queries": len(queries)})
    json.dump(costs, sys.stdout)
    sys.stdout.write("\n")


def name_matches(name: str, words: str) -> bool:
    """Whether a route's name contains one of the comma-separated `words`."""
    return any(word in name for word in words.split(","))


def profile_print(name: str, calls) -> None:
    """With BENCH_PROFILE=word,…: where a route's CPU goes (cProfile, top 30 by own time, or
    by another pstats key named in BENCH_PROFILE_SORT, such as `cumulative`).

    The profiler's clock is this process's CPU time, so waiting on PostgreSQL or Redis costs
    nothing here: what is left is the Python work a faster route would have to cut.

    Appended to profile.txt beside the routes file; bench/run.py prints it.
    """
    import cProfile
    import pstats

    profiler = cProfile.Profile(time.process_time)
    profiler.runcall(calls)
    with (Path(sys.argv[1]).parent / "profile.txt").open("a") as out:
        out.write(f"\n--- profile: {name}\n")
        pstats.Stats(profiler, stream=out).sort_stats(
            os.environ.get("BENCH_PROFILE_SORT", "tottime")
        ).print_stats(int(os.environ.get("BENCH_PROFILE_LINES", "30")))


if __name__ == "__main__":
    main()
