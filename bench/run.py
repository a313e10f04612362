"""`make bench`: load-test the hot routes against a bare DRF route on a throwaway database.

Creates the PostgreSQL database `chatshield_bench` (dropping a leftover one), migrates and seeds it,
serves it with gunicorn on 127.0.0.1, drives each route with wrk, prints a table and writes it to
docs/PERFORMANCE.md. Whatever happens, gunicorn is stopped, the database dropped and the run's
Redis keys deleted. Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth), Redis at
127.0.0.1:6379 and wrk. Not part of `make test`; a run takes under three minutes. One benchmark
runs at a time (`bench_lock`).
"""

import argparse
import contextlib
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import psycopg.sql
import redis

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "lua" / "bench.lua"
DOC = ROOT / "docs" / "PERFORMANCE.md"
DOC_START = "<!-- bench:results:start (written by bench/run.py; edit outside these markers) -->"
DOC_END = "<!-- bench:results:end -->"

HOST = "127.0.0.1"
DB_NAME = "chatshield_bench"
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/5"
# pg_try_advisory_lock's key for "a benchmark is running here" (the bytes of "chatshld").
BENCH_LOCK_KEY = 0x63686174_73686C64
ORG_SLUG = "bench"
# The verified users authenticate-user signs in: bench/lua/bench.lua's {n} runs over 1..1000.
CUSTOMERS = 1000
# Messages in each seeded non-verified contact's one conversation (bench/seed.py): a messages
# table the size of a live one's when the statistics are taken.
MESSAGES_PER_CONTACT = 10
# The widget runs on the customer's pages, another origin: every request a browser sends it carries
# an Origin, which WidgetCorsMiddleware checks against the org's allowed origins (SPEC §3). The
# bench's org allows two, and the browser routes send the second.
WIDGET_ORIGIN = "https://shop.bench.example"
ALLOWED_ORIGINS = ("https://www.bench.example", WIDGET_ORIGIN)
P99_TARGET_MS = 25.0
UNLIMITED = "1000000/min"


@dataclass
class Route:
    """One wrk run: a request shape and the issue's target share of the baseline's req/s."""

    name: str
    method: str
    path: str
    headers: dict[str, str]
    target_ratio: float | None
    body: str | None = None
    paths: list[str] = field(default_factory=list)
    # What the documented commands print instead of live credentials.
    shown_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Result:
    route: Route
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    requests: int = 0
    failed: int = 0
    note: str = ""
    # The baseline's req/s measured just before this route: the ratio's denominator.
    baseline_rps: float | None = None
    # From bench/cost.py: Python CPU per request in-process, and SQL queries per request.
    cpu_ms: float | None = None
    queries: int | None = None
    # Served: CPU per request of gunicorn's processes and of PostgreSQL's during the wrk run.
    app_ms: float | None = None
    db_ms: float | None = None

    @property
    def measured(self) -> bool:
        return self.rps is not None


def main() -> int:
    args = arguments()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk).")
    with bench_lock("make bench"):
        return bench(args)


def bench(args: argparse.Namespace) -> int:
    # `timeout`, CI cancellations and kill send SIGTERM: unwind through the cleanup below.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="chatshield-bench-"))
    port = free_port()
    cache_prefix = f"chatshield-bench-{secrets.token_hex(4)}"
    env = server_environment(port=port, cache_prefix=cache_prefix)
    gunicorn_cmd = [
        str(Path(sys.executable).parent / "gunicorn"),
        "config.wsgi",
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        args.worker_class,
        *(["--threads", str(args.threads)] if args.worker_class == "gthread" else []),
        # wrk opens few long-lived connections; unbalanced, they can all land on one worker and
        # halve the measured throughput. Capping each worker's share splits them evenly.
        *(
            ["--worker-connections", str(math.ceil(args.connections / args.workers))]
            if args.worker_class == "gthread"
            else []
        ),
        "--timeout",
        "30",
        "--graceful-timeout",
        "5",
    ]
    server: subprocess.Popen | None = None
    server_log = tmp / "gunicorn.log"
    results: list[Result] = []
    try:
        step("database", f"recreating {DB_NAME}")
        database_recreate()
        manage(env, "migrate", "--noinput", "--verbosity", "0")
        seed_file = tmp / "seed.json"
        manage(env, "seed_demo", "--org", ORG_SLUG, "--output", str(seed_file))
        demo = json.loads(seed_file.read_text())
        step("database", f"seeding {args.contacts} contacts, {CUSTOMERS} customers, API keys")
        keys = json.loads(
            run([sys.executable, str(BENCH / "seed.py"), "--org-slug", ORG_SLUG,
                 "--contacts", str(args.contacts), "--customers", str(CUSTOMERS),
                 "--messages-per-contact", str(MESSAGES_PER_CONTACT),
                 *(arg for origin in ALLOWED_ORIGINS for arg in ("--allowed-origin", origin))],
                env=env).splitlines()[-1]
        )  # fmt: skip
        busy_before = cpu_busy()
        step("machine", f"{busy_before:.0%} of the CPU busy before the server starts")
        sync_before = disk_sync_us(tmp)
        step("machine", f"fdatasync of 8 kB: {sync_before:.0f} µs (median of {SYNC_SAMPLES})")
        step("server", " ".join(gunicorn_cmd[1:]))
        with server_log.open("wb") as log:
            server = subprocess.Popen(
                gunicorn_cmd,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        base = f"http://{HOST}:{port}"
        wait_healthy(base, server)
        routes = routes_build(base=base, demo=demo, keys=keys, sessions=args.sessions)
        baseline_route, *others = routes
        if args.only:
            wanted = set(args.only.split(","))
            others = [r for r in others if wanted & set(re.split(r"[ /]", r.name))]
        # start_new_session: the server leads its own process group, whose CPU measure() reads.
        baseline = measure(base, baseline_route, args, server_pgid=server.pid)
        baseline.baseline_rps = baseline.rps
        results.append(baseline)
        # The load on a shared machine drifts: each route sits between two baseline runs, and
        # its ratio is to their mean, so a drift that is steady over the pair cancels out.
        before = baseline
        for route in others:
            result = measure(base, route, args, server_pgid=server.pid)
            result.baseline_rps = baseline.rps
            if args.paired_baseline and result.measured:
                after = measure(
                    base,
                    baseline_route,
                    args,
                    server_pgid=server.pid,
                    seconds=args.paired_baseline,
                )
                result.baseline_rps = (before.rps + after.rps) / 2
                before = after
            results.append(result)
        load = os.getloadavg()
        sync_after = disk_sync_us(tmp)
        step("machine", f"fdatasync of 8 kB after the wrk runs: {sync_after:.0f} µs")
        step("cost", "in-process CPU time and queries per request (bench/cost.py)")
        costs_attach(results, env=env, tmp=tmp, calls=args.cost_calls)
        print_table(results)
        if busy_before > 0.2:
            step("warning", f"other processes kept {busy_before:.0%} of the CPU busy: noisy run")
        if args.no_report:
            step("done", f"{time.monotonic() - started:.0f} s; docs/PERFORMANCE.md left as it was")
            return 0
        write_doc(
            results,
            args=args,
            gunicorn_cmd=gunicorn_cmd,
            port=port,
            busy_before=busy_before,
            load=load,
            sync_us=(sync_before, sync_after),
        )
        step("done", f"{time.monotonic() - started:.0f} s; results in {DOC.relative_to(ROOT)}")
        return 0
    except Exception:
        if server_log.exists():
            sys.stderr.write("--- gunicorn log (last 40 lines) ---\n")
            sys.stderr.write("\n".join(server_log.read_text(errors="replace").splitlines()[-40:]))
            sys.stderr.write("\n")
        raise
    finally:
        if server is not None:
            server_stop(server)
        database_drop()
        redis_keys_delete(cache_prefix)
        shutil.rmtree(tmp, ignore_errors=True)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cores = len(os.sched_getaffinity(0))
    parser.add_argument("--workers", type=int, default=cores, help="gunicorn workers (cores)")
    parser.add_argument("--worker-class", choices=["gthread", "sync"], default="sync")
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument("--duration", type=int, default=10, help="seconds per route")
    parser.add_argument("--warmup", type=int, default=1, help="unrecorded seconds per route")
    parser.add_argument(
        "--paired-baseline",
        type=int,
        default=5,
        help="seconds of baseline run after each route (0: every ratio to the first baseline)",
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument(
        "--cost-calls", type=int, default=200, help="in-process calls per route (0: skip)"
    )
    parser.add_argument(
        "--no-report", action="store_true", help="print the table only; leave the docs alone"
    )
    parser.add_argument("--only", help="comma-separated words: measure only matching routes")
    parser.add_argument("--contacts", type=int, default=1000, help="contacts seeded for the list")
    parser.add_argument("--sessions", type=int, default=8, help="conversations messages go to")
    return parser.parse_args()


def step(stage: str, message: str) -> None:
    print(f"[bench] {stage}: {message}", flush=True)


def run(cmd: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def manage(env: dict[str, str], *args: str) -> str:
    return run([sys.executable, "manage.py", *args], env=env)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def server_environment(*, port: int, cache_prefix: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_DEBUG": "false",
            "DATABASE_URL": DATABASE_URL,
            "REDIS_URL": REDIS_URL,
            "CACHE_KEY_PREFIX": cache_prefix,
            "SECURE_SSL_REDIRECT": "false",
            "DJANGO_ALLOWED_HOSTS": HOST,
            "PUBLIC_URL": f"http://{HOST}:{port}",
            "CHATSHIELD_BENCH_BASELINE": "1",
            "DEMO_MODE": "false",
            "LOG_LEVEL": "INFO",
            # Throttles would turn the write routes into a 429 benchmark.
            "THROTTLE_AGENT_SIGNIN_IP": UNLIMITED,
            "THROTTLE_ANONYMOUS_MINT_IP": UNLIMITED,
            "THROTTLE_ANONYMOUS_MINT_WIDGET": UNLIMITED,
            "THROTTLE_AUTHENTICATE_USER_KEY": UNLIMITED,
            "THROTTLE_CUSTOM_TOKEN_IP": UNLIMITED,
        }
    )
    return env


@contextlib.contextmanager
def bench_lock(what: str, *, key: int = BENCH_LOCK_KEY):
    """Run one benchmark at a time: two would share the cores, and `make bench` its database.

    A session-level PostgreSQL advisory lock on the PostgreSQL the runs share, held on its own
    connection until the run ends; PostgreSQL releases it when that connection closes, so a run
    that crashes or is killed never leaves it behind. A second run exits at once, before it
    touches anything.
    """
    conn = psycopg.connect(PG_ADMIN_DSN, autocommit=True, application_name=f"chatshield {what}")
    locked = False
    try:
        locked = conn.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0]
        if not locked:
            holder = conn.execute(
                "SELECT l.pid, a.application_name FROM pg_locks l"
                " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory'"
                " AND l.granted AND (l.classid::bigint << 32 | l.objid::bigint) = %s",
                [key],
            ).fetchone()
            by = f" ({holder[1]}, PostgreSQL pid {holder[0]})" if holder else ""
            sys.exit(
                f"Another benchmark is running{by}: it holds the bench lock on {PG_ADMIN_DSN}."
                " Wait for it to finish: two runs would share the cores and spoil each other."
            )
        yield
    finally:
        # Released before the connection closes: a closing backend drops its locks only as it
        # exits, after the client has moved on, so the next run could still find it held.
        if locked and not conn.closed:
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s)", [key])
        conn.close()


def database_recreate(name: str = DB_NAME) -> None:
    database_drop(name)
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))


def database_drop(name: str = DB_NAME) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                psycopg.sql.Identifier(name)
            )
        )


def postgres_version() -> str:
    with psycopg.connect(PG_ADMIN_DSN) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def redis_keys_delete(prefix: str) -> None:
    try:
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)
    except redis.RedisError as exc:
        step("cleanup", f"could not delete Redis keys {prefix}:* ({exc})")


def server_stop(server: subprocess.Popen) -> None:
    """Stop gunicorn's whole process group: TERM, then KILL whatever is left after 10 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=10)
    # A worker stuck past the graceful timeout, or a master that ignored TERM.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=5)


def http(
    base: str, method: str, path: str, headers: dict[str, str], body: dict | str | None = None
) -> tuple[int, dict | str]:
    data = None
    if body is not None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        headers = {**headers, "Content-Type": "application/json"}
    # Only ever our own http://127.0.0.1 server.
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode(errors="replace")[:300]


def http_ok(base: str, method: str, path: str, headers: dict[str, str], body=None) -> dict:
    status, payload = http(base, method, path, headers, body)
    if not 200 <= status < 300:
        raise RuntimeError(f"{method} {path} answered {status}: {payload}")
    return payload


def wait_healthy(base: str, server: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}")
        try:
            if http(base, "GET", "/healthz", {})[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer /healthz within 30 s")


def widget_headers(widget_token: str) -> dict[str, str]:
    """What the widget sends on every request from a customer's page."""
    return {"X-Widget-Token": widget_token, "Origin": WIDGET_ORIGIN}


def routes_build(*, base: str, demo: dict, keys: dict, sessions: int) -> list[Route]:
    """The visitor fixtures come through the public routes, as a widget and a backend make them."""
    widget = widget_headers(demo["widget_token"])
    anonymous = http_ok(base, "POST", "/widget/contacts/unverified", widget, {})["token"]
    backend = {"Authorization": f"Bearer {keys['widget_api_key']}"}
    customer = {"email": "customer@bench.example", "user_id": "bench-customer", "name": "Bench"}
    verified = http_ok(base, "POST", "/widget/authenticate-user", backend, customer)["token"]
    as_customer = {**widget, "Authorization": f"Bearer {verified}"}
    conversation_ids = []
    for n in range(sessions):
        status, opened = http(base, "POST", "/widget/sessions", as_customer, {})
        if status != 201:
            step("fixtures", f"POST /widget/sessions answered {status}: {opened}")
            break
        conversation_ids.append(opened["id"])
        for m in range(5):
            http_ok(
                base,
                "POST",
                f"/widget/sessions/{opened['id']}/messages",
                as_customer,
                {"text": f"Seeded message {m} in conversation {n}"},
            )
    step("fixtures", f"1 anonymous and 1 verified token, {len(conversation_ids)} conversations")

    shown_widget = widget_headers("<widget token>")
    routes = [
        Route("baseline (bare DRF)", "GET", "/bench/baseline", {}, None),
        Route("GET /widget/config", "GET", "/widget/config", widget, 0.85,
              shown_headers=shown_widget),
        Route("GET /widget/me", "GET", "/widget/me",
              {**widget, "Authorization": f"Bearer {anonymous}"}, 0.60,
              shown_headers={**shown_widget, "Authorization": "Bearer <anonymous token>"}),
        Route("GET /widget/sessions", "GET", "/widget/sessions", as_customer, 0.40,
              shown_headers={**shown_widget, "Authorization": "Bearer <verified token>"}),
        Route("GET /api/v1/orgs/{org}/contacts", "GET", f"/api/v1/orgs/{keys['org_id']}/contacts",
              {"Authorization": f"Bearer {keys['read_api_key']}"}, None,
              shown_headers={"Authorization": "Bearer <csk_… contacts:read>"}),
        Route("POST /widget/contacts/unverified", "POST", "/widget/contacts/unverified",
              {**widget, "Content-Type": "application/json"}, 0.25, body="{}",
              shown_headers={**shown_widget, "Content-Type": "application/json"}),
        Route("POST /widget/authenticate-user", "POST", "/widget/authenticate-user",
              {**backend, "Content-Type": "application/json"}, 0.25,
              body='{"email": "user{n}@bench.example", "user_id": "bench-user-{n}", '
                   '"name": "User {n}"}',
              shown_headers={"Authorization": "Bearer <csk_… widget:authenticate>",
                             "Content-Type": "application/json"}),
    ]  # fmt: skip
    if conversation_ids:
        message_paths = [f"/widget/sessions/{cid}/messages" for cid in conversation_ids]
        routes.append(
            Route("POST /widget/sessions/{id}/messages", "POST", message_paths[0],
                  {**as_customer, "Content-Type": "application/json"}, 0.25,
                  body='{"text": "Hello from the benchmark"}', paths=message_paths,
                  shown_headers={**shown_widget, "Authorization": "Bearer <verified token>",
                                 "Content-Type": "application/json"})
        )  # fmt: skip
    else:
        routes.append(
            Route("POST /widget/sessions/{id}/messages", "POST", "/widget/sessions", {}, 0.25)
        )
    return routes


def wrk_command(base: str, route: Route, args: argparse.Namespace, seconds: int, shown=False):
    headers = route.shown_headers if shown else route.headers
    paths = route.paths
    if shown and paths:
        first = re.sub(r"[0-9a-f-]{36}", "<id 1>", paths[0])
        last = re.sub(r"[0-9a-f-]{36}", f"<id {len(paths)}>", paths[-1])
        paths = [first, "…", last] if len(paths) > 2 else [first, last][: len(paths)]
    cmd = [
        "wrk",
        f"-t{args.wrk_threads}",
        f"-c{args.connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        str(LUA.relative_to(ROOT)) if shown else str(LUA),
    ]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    path = route.path
    if shown:
        path = re.sub(r"[0-9a-f-]{36}", "<id>", path)
    cmd += [base + path, "--", route.method, route.body or "-", *paths]
    return cmd


def measure(
    base: str,
    route: Route,
    args: argparse.Namespace,
    *,
    server_pgid: int,
    seconds: int | None = None,
) -> Result:
    """Probe the route once (skip it unless 2xx), warm it up, then run wrk for `seconds`."""
    seconds = seconds or args.duration
    if not route.headers and route.target_ratio is not None:
        return Result(route, note="not measured: no conversation could be opened")
    probe_body = route.body.replace("{n}", "0") if route.body else None
    probe_path = route.paths[0] if route.paths else route.path
    status, payload = http(base, route.method, probe_path, route.headers, probe_body)
    if not 200 <= status < 300:
        step("skip", f"{route.name} answered {status}: {str(payload)[:200]}")
        return Result(route, note=f"not measured: the route answered {status}")
    if args.warmup:
        wrk(wrk_command(base, route, args, args.warmup), args.warmup)
    step("wrk", f"{route.name} ({seconds} s, {args.connections} connections)")
    cpu_before = roles_cpu(server_pgid)
    stats = wrk(wrk_command(base, route, args, seconds), seconds)
    cpu_spent = roles_cpu_spent(cpu_before, roles_cpu(server_pgid))
    errors = stats["errors"]
    seconds = stats["duration_us"] / 1e6
    failed = errors["status"] + errors["connect"] + errors["read"] + errors["write"]
    failed += errors["timeout"]
    note = f"{failed} of {stats['requests']} failed or non-2xx" if failed else ""
    return Result(
        route,
        rps=stats["requests"] / seconds,
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        requests=stats["requests"],
        failed=failed,
        note=note,
        app_ms=cpu_spent["app"] * 1000 / max(stats["requests"], 1),
        db_ms=cpu_spent["db"] * 1000 / max(stats["requests"], 1),
    )


def roles_cpu(server_pgid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds used so far by each live process of the server's process group (role `app`,
    gunicorn) and of PostgreSQL (role `db`), by pid, from /proc (user + system time)."""
    processes = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone since the listing
            continue
        command = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is stat(5)'s field 3
        cpu = (int(fields[11]) + int(fields[12])) / tick
        if int(fields[2]) == server_pgid:
            processes[int(entry.name)] = ("app", cpu)
        elif command.startswith("postgres"):
            processes[int(entry.name)] = ("db", cpu)
    return processes


def roles_cpu_spent(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds each role spent between two `roles_cpu` readings.

    A process that started in between counts in full; one that ended in between (a persistent
    connection closed at its `CONN_MAX_AGE`) is lost, so the figures can only err low, by little.
    """
    spent = {"app": 0.0, "db": 0.0}
    for pid, (role, cpu) in after.items():
        previous = before.get(pid)
        spent[role] += cpu - (previous[1] if previous and previous[0] == role else 0.0)
    return spent


def costs_attach(results: list[Result], *, env: dict[str, str], tmp: Path, calls: int) -> None:
    measured = [r for r in results if r.measured]
    if not calls or not measured:
        return
    spec = tmp / "routes.json"
    spec.write_text(
        json.dumps(
            [
                {
                    "name": r.route.name,
                    "method": r.route.method,
                    "path": r.route.path,
                    "paths": r.route.paths,
                    "headers": r.route.headers,
                    "body": r.route.body,
                }
                for r in measured
            ]
        )
    )
    command = [sys.executable, str(BENCH / "cost.py"), str(spec), str(calls)]
    callgrind = tmp / "callgrind.out"
    if env.get("BENCH_CALLGRIND"):
        command = callgrind_command(callgrind, command)
    elif env.get("BENCH_PYSPY"):
        # Sampling profile of the cost run (py-spy, no tracing overhead): collapsed stacks.
        spy = Path(sys.executable).with_name("py-spy")
        record = [str(spy), "record", "--nonblocking", "-r", "1000", "-f", "raw"]
        command = [*record, "-o", env["BENCH_PYSPY"], "--", *command]
    output = run(command, env=env)
    if env.get("BENCH_PROFILE"):
        profiled = tmp / "profile.txt"
        sys.stdout.write(
            profiled.read_text()
            if profiled.exists()
            else f"[bench] BENCH_PROFILE={env['BENCH_PROFILE']} named no measured route\n"
        )
    # The costs are the last JSON line (py-spy, when it wraps the run, prints after it).
    costs_line = next(line for line in reversed(output.splitlines()) if line.startswith("["))
    costs = json.loads(costs_line)
    if env.get("BENCH_CALLGRIND"):
        instructions = callgrind_totals(callgrind, len(costs))
        for cost, total in zip(costs, instructions, strict=True):
            # CPU time under valgrind says nothing about the route; its instructions do.
            cost["cpu_ms"] = None
            cost["instructions"] = total / calls
        instructions_print(costs)
    by_name = {cost["name"]: cost for cost in costs}
    for result in measured:
        cost = by_name.get(result.route.name)
        if cost:
            result.cpu_ms, result.queries = cost["cpu_ms"], cost["queries"]


def callgrind_command(out: Path, command: list[str]) -> list[str]:
    """`command` under callgrind, counting instructions only inside `operator.call` and writing
    the count of each such call to a part of its own (`out.1`, `out.2`, …)."""
    return [
        "valgrind",
        "--tool=callgrind",
        "--collect-atstart=no",
        "--toggle-collect=_operator_call",
        "--dump-after=_operator_call",
        f"--callgrind-out-file={out}",
        *command,
    ]


def callgrind_totals(out: Path, parts: int) -> list[int]:
    """The instructions callgrind counted in each of its `parts` dumps (`out.1`, `out.2`, …)."""
    totals = []
    for part in range(1, parts + 1):
        text = Path(f"{out}.{part}").read_text()
        line = next(line for line in text.splitlines() if line.startswith("totals:"))
        totals.append(int(line.split()[1]))
    return totals


def instructions_print(costs: list[dict]) -> None:
    """Each route's instructions per in-process request, and their multiple of the baseline's."""
    floor = next((c["instructions"] for c in costs if c["name"].startswith("baseline")), None)
    sys.stdout.write("\n[bench] instructions per in-process request (callgrind)\n")
    for cost in costs:
        times = f"  {cost['instructions'] / floor:.2f} x baseline" if floor else ""
        sys.stdout.write(f"  {cost['name']:<40} {cost['instructions']:>12,.0f}{times}\n")


def wrk(cmd: list[str], seconds: int) -> dict:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line.removeprefix("BENCH_JSON "))
    raise RuntimeError(f"wrk gave no summary (exit {done.returncode}):\n{done.stdout}{done.stderr}")


def verdict(result: Result) -> tuple[str, str]:
    """The ratio column and whether the route meets the issue's targets."""
    baseline = result.baseline_rps
    if not result.measured:
        return "—", result.note
    ratio = f"{result.rps / baseline:.2f}" if baseline else "—"
    misses = []
    target = result.route.target_ratio
    if target is not None and baseline and result.rps / baseline < target:
        # Three places: a ratio shown as 0.25 may still be under 0.25.
        misses.append(f"ratio {result.rps / baseline:.3f} < {target:.2f}")
    if result.p99_ms is not None and result.p99_ms >= P99_TARGET_MS:
        misses.append(f"p99 ≥ {P99_TARGET_MS:.0f} ms")
    if result.failed:
        misses.append(result.note)
    if target is None and result.route.name.startswith("baseline"):
        status = "floor"
    elif misses:
        status = "MISS: " + "; ".join(misses)
    else:
        status = "ok"
    return ratio, status


def table_rows(results: list[Result]) -> list[list[str]]:
    rows = []
    for result in results:
        ratio, status = verdict(result)
        target = result.route.target_ratio
        rows.append(
            [
                result.route.name,
                f"{result.rps:,.0f}" if result.measured else "—",
                f"{result.p50_ms:.1f}" if result.measured else "—",
                f"{result.p99_ms:.1f}" if result.measured else "—",
                f"{result.baseline_rps:,.0f}" if result.baseline_rps else "—",
                ratio,
                f"{result.app_ms:.2f}" if result.app_ms is not None else "—",
                f"{result.db_ms:.2f}" if result.db_ms is not None else "—",
                f"{result.cpu_ms:.2f}" if result.cpu_ms is not None else "—",
                str(result.queries) if result.queries is not None else "—",
                f"≥ {target:.2f}" if target is not None else "—",
                status,
            ]
        )
    return rows


HEADER = [
    "route",
    "req/s",
    "p50 ms",
    "p99 ms",
    "baseline req/s",
    "ratio",
    "app CPU ms",
    "db CPU ms",
    "in-process CPU ms",
    "SQL",
    "target",
    "verdict",
]


def print_table(results: list[Result]) -> None:
    rows = [HEADER, *table_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    print()
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))
    print()


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.MULTILINE)
    return {
        "cores": str(len(os.sched_getaffinity(0))),
        "cpu": model.group(1).strip() if model else "unknown",
        "ram": f"{int(mem_kb.group(1)) / 1024 / 1024:.1f} GiB" if mem_kb else "unknown",
        "kernel": platform.release(),
    }


def cpu_busy(seconds: float = 2.0) -> float:
    """Share of all cores busy over `seconds`, from /proc/stat: what else the machine is doing."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(total1 - total0, 1)


SYNC_SAMPLES = 200


def disk_sync_us(directory: Path, samples: int = SYNC_SAMPLES) -> float:
    """Median µs to write 8 kB and `fdatasync` it in `directory`: what a durable commit waits for.

    PostgreSQL flushes its WAL this way (`wal_sync_method = fdatasync`, Linux's default) before
    a synchronous commit answers, so on a virtual disk whose flush latency drifts, the routes
    that commit durably (message posting) drift with it. Run before the server starts and after
    the wrk runs, and reported with the results; `pg_test_fsync` measures the same more fully.
    """
    path = directory / "sync-probe"
    block = os.urandom(8192)
    timings = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(samples):
            started = time.perf_counter()
            os.pwrite(fd, block, 0)
            os.fdatasync(fd)
            timings.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return statistics.median(timings) * 1e6


def git_commit() -> str:
    """HEAD's commit, read from .git directly (no git binary needed); worktrees included."""
    git = ROOT / ".git"
    try:
        if git.is_file():  # a worktree's .git file: "gitdir: <path>"
            git = (ROOT / git.read_text().split(":", 1)[1].strip()).resolve()
        common = git
        if (git / "commondir").is_file():
            common = (git / (git / "commondir").read_text().strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head.removeprefix("ref: ")
        for directory in (git, common):
            if (directory / ref).is_file():
                return (directory / ref).read_text().strip()
        for line in (common / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        pass
    return "unknown"


def write_doc(
    results: list[Result],
    *,
    args,
    gunicorn_cmd: list[str],
    port: int,
    busy_before: float,
    load: tuple[float, float, float],
    sync_us: tuple[float, float],
) -> None:
    import django
    import gunicorn

    info = machine()
    base = f"http://{HOST}:<port>"
    shown_gunicorn = " ".join(
        part.replace(str(port), "<port>") for part in ["gunicorn", *gunicorn_cmd[1:]]
    )
    lines = [
        DOC_START,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{git_commit()}` (plus any "
        "uncommitted changes in the working tree).",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---"] + ["--:"] * (len(HEADER) - 2) + ["---"]) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    lines += [
        "",
        f"- Machine: {info['cores']} cores ({info['cpu']}), {info['ram']} RAM, Linux "
        f"{info['kernel']}. wrk, gunicorn, PostgreSQL and Redis all share these cores.",
        f"- Other load: {busy_before:.0%} of the CPU was busy with other processes just before "
        f"the server started; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the "
        "end of the run (anything well above 0 % before the run means noisy numbers).",
        f"- Disk: writing 8 kB and `fdatasync`ing it took {sync_us[0]:.0f} µs before the run and "
        f"{sync_us[1]:.0f} µs after it (median of {SYNC_SAMPLES}); a durable commit waits for "
        "one such flush, so message posting, the one measured route that commits durably, "
        "moves with it.",
        f"- Software: Python {platform.python_version()}, Django {django.get_version()}, "
        f"gunicorn {gunicorn.__version__}, PostgreSQL {postgres_version()}, Redis at "
        f"`{REDIS_URL}`.",
        f"- Load: {args.connections} connections, {args.wrk_threads} wrk threads, "
        f"{args.duration} s per route after {args.warmup} s of unrecorded warm-up; latency is "
        "wrk's (connection to last byte). Throttles set to 1000000/min so they never answer "
        "429; everything else is the production configuration (DEBUG off, Redis cache, "
        "persistent PostgreSQL connections, the fixed hot statements prepared).",
        (
            "- Ratio: the route's req/s over the mean req/s of the two baseline runs around it "
            f"(the `baseline req/s` column): the one before it (the first baseline, or the "
            f"{args.paired_baseline} s run after the previous route) and a {args.paired_baseline} "
            "s run just after it, so that background load drifting steadily over the pair hits "
            "both sides of the ratio alike."
            if args.paired_baseline
            else "- Ratio: the route's req/s over the first baseline run's."
        ),
        "- app CPU ms and db CPU ms: the CPU time gunicorn's processes and PostgreSQL's "
        "processes spent during the route's wrk run (from /proc), per request served. Their sum "
        "against the baseline's app CPU is what the ratio measures; Redis and wrk take the rest. "
        "A PostgreSQL connection closed during the run (at its `CONN_MAX_AGE`) takes its share "
        "with it, so db CPU can err low.",
        f"- in-process CPU ms and SQL: `bench/cost.py` calls each route {args.cost_calls} times "
        "in-process (Django's test client: full middleware, PostgreSQL and Redis, one thread) "
        "and divides its own CPU time by the calls; SQL is the queries one call makes. This "
        "barely moves with other load, unlike req/s, so compare runs on it.",
        f"- Data: org `{ORG_SLUG}` from `seed_demo`, {args.contacts} seeded contacts (half "
        f"anonymous, half non-verified; each non-verified one with a conversation of "
        f"{MESSAGES_PER_CONTACT} messages) and {CUSTOMERS} verified customers, then VACUUM "
        "ANALYZE, so the planner works from fresh statistics as under autovacuum; one more "
        f"verified customer with {args.sessions} conversations of 5 messages; `/widget/me` "
        f"uses an anonymous token; `authenticate-user` signs in one of the {CUSTOMERS} "
        "customers at random per request (an upsert of a known contact and a new device); "
        "messages go to a random one of the customer's conversations. The org allows "
        f"{len(ALLOWED_ORIGINS)} origins, and the widget's routes send `Origin: {WIDGET_ORIGIN}`, "
        "one of them, as a browser on a customer's page does.",
        "",
        "Commands (`make bench` runs them all; credentials and ids are the run's own):",
        "",
        "```sh",
        shown_gunicorn,
    ]
    lines += [
        " ".join(quote(part) for part in wrk_command(base, r.route, args, args.duration, True))
        for r in results
        if r.measured
    ]
    if args.paired_baseline:
        lines.append(
            f"# after each route: the baseline command again with -d{args.paired_baseline}s"
        )
    lines += ["```", "", DOC_END]
    section = "\n".join(wrap(line) for line in lines)
    if DOC.exists() and DOC_START in (text := DOC.read_text()) and DOC_END in text:
        head, rest = text.split(DOC_START, 1)
        tail = rest.split(DOC_END, 1)[1]
        DOC.write_text(head + section + tail)
    else:
        DOC.parent.mkdir(exist_ok=True)
        intro = textwrap.fill(
            "`make bench` (`bench/run.py`) serves a throwaway PostgreSQL database with gunicorn "
            "on 127.0.0.1 and drives each hot route with wrk next to a bare DRF route "
            "(`bench/baseline.py`, served only when `CHATSHIELD_BENCH_BASELINE=1`). The ratio is "
            "a route's req/s over the baseline's: the share of the framework's throughput the "
            "route keeps on the same machine, which travels between machines better than raw "
            "req/s.",
            width=100,
        )
        DOC.write_text(f"# Performance\n\n{intro}\n\n## Latest run\n\n{section}\n")


def wrap(line: str) -> str:
    """Prose and bullets at 100 columns; tables, commands and markers as they are."""
    if line.startswith(("|", "<!--", "```", "gunicorn", "wrk", "#")) or len(line) <= 100:
        return line
    indent = "  " if line.startswith("- ") else ""
    return textwrap.fill(line, width=100, subsequent_indent=indent, break_on_hyphens=False)


def quote(part: str) -> str:
    return part if re.fullmatch(r"[\w./:@%+=,-]+", part) else "'" + part.replace("'", "'\\''") + "'"


if __name__ == "__main__":
    sys.exit(main())
