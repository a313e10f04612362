"""The Dockerfile and compose.yaml, replayed without a container engine (docs/deploy.md).

No machine this project is built on has had a container engine, so the image has never been
built. These tests run what the two files say, as far as it can run on the host: the build
context the `.dockerignore` leaves, the Dockerfile's RUN steps (but installing the
dependencies, which `make install` does from the same pyproject.toml, and creating the user),
compose's one-shot `migrate`, the image's `CMD` with its `ENV` and compose's app environment
(two app servers, as compose runs), the image's `HEALTHCHECK`, and compose's nginx
configuration in front of both servers. Only the addresses change: 0.0.0.0:8000, `app1:8000`,
`app2:8000` and nginx's port 80 become free ports on 127.0.0.1; the database is a SQLite file,
and there is no Redis. The nginx part needs Debian's nginx (`.ci/run` installs it) and is
skipped without it.
"""

import contextlib
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml
from django.conf import settings

from bench.run import free_port, server_stop

ROOT = Path(settings.BASE_DIR)
VENV_BIN = Path(sys.executable).parent
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
START_TIMEOUT_SECONDS = 60
# What the Dockerfile's RUN steps do that the host must not: the dependencies are the venv's
# (installed by `make install` from the same pyproject.toml), and the user is the image's own.
NOT_REPLAYED = {"pip": "the venv holds the dependencies", "useradd": "the image's own user"}
# A customer-signed token at its 8 KiB limit with "JWT " in front (docs/api.md).
LONGEST_TOKEN_HEADER = "JWT " + "a" * 8192


# --- reading the two files ----------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments left out."""
    instructions, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def exec_form(arguments: str) -> list[str]:
    argv = json.loads(arguments)
    assert isinstance(argv, list), f"not an exec-form list: {arguments}"
    return argv


@dataclass
class Image:
    env: dict[str, str]
    runs: list[str]
    cmd: list[str]
    healthcheck: list[str]
    exposed: str


def image_read() -> Image:
    env, runs, cmd, healthcheck, exposed = {}, [], [], [], ""
    for keyword, arguments in dockerfile_instructions((ROOT / "Dockerfile").read_text()):
        if keyword == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                env[name] = value
        elif keyword == "RUN":
            runs.append(arguments)
        elif keyword == "CMD":
            cmd = exec_form(arguments)
        elif keyword == "HEALTHCHECK":
            healthcheck = exec_form(arguments.split(" CMD ", 1)[1])
            assert healthcheck[0] != "CMD-SHELL"
        elif keyword == "EXPOSE":
            exposed = arguments
    return Image(env=env, runs=runs, cmd=cmd, healthcheck=healthcheck, exposed=exposed)


def compose_read() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def compose_interpolate(value: str, given: dict[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}` with `given` as the shell."""

    def one(match: re.Match) -> str:
        name, operator, word = match.group(1), match.group(2), match.group(3) or ""
        if given.get(name):
            return given[name]
        if operator == ":?":
            raise AssertionError(f"compose.yaml requires {name}: {word}")
        return word

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


def dockerignore_pattern(pattern: str) -> re.Pattern:
    """A `.dockerignore` pattern as Docker reads it: `*` and `?` within one path segment, `**`
    across any number of them."""
    parts = []
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern.strip("/")):
        parts.append(
            {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
        )
    return re.compile("".join(parts))


def dockerignore_keeps(path: str, patterns: list[str]) -> bool:
    """Whether Docker sends `path` in the build context: the last pattern that matches the path
    or one of its directories decides, `!` keeping it."""
    prefixes = ["/".join(path.split("/")[: i + 1]) for i in range(path.count("/") + 1)]
    kept = True
    for pattern in patterns:
        regex = dockerignore_pattern(pattern.removeprefix("!"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            kept = pattern.startswith("!")
    return kept


def build_context(destination: Path) -> set[str]:
    """The files `docker build .` sends from this directory, as `.dockerignore` leaves them,
    copied to `destination`. A directory the patterns leave out is not entered: Docker would
    still look inside one for a `!` exception, and ours have none inside a directory."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert not any(p.startswith("!") and "/" in p for p in patterns), "enter excluded dirs"
    kept = set()
    for directory, subdirectories, files in os.walk(ROOT):
        base = Path(directory).relative_to(ROOT)
        subdirectories[:] = [
            name
            for name in subdirectories
            if dockerignore_keeps((base / name).as_posix(), patterns)
        ]
        for name in files:
            path = (base / name).as_posix()
            if dockerignore_keeps(path, patterns):
                target = destination / path
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / path, target)
                kept.add(path)
    return kept


# --- running them -------------------------------------------------------------------------------


def host_env(extra: dict[str, str]) -> dict[str, str]:
    """A clean environment, as a container's is: PATH with the venv first, then `extra`."""
    return {
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": os.environ.get("HOME", "/root"),
        **extra,
    }


def shell_run(command: str, *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - the Dockerfile's and compose's own commands
        ["/bin/sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@dataclass
class Stack:
    context: Path
    context_files: set[str]
    image: Image
    app_env: dict[str, str]
    app_ports: list[int]
    nginx_port: int
    logs: Path

    def log_text(self, port: int) -> str:
        """What the app server on `port` has logged so far."""
        number = self.app_ports.index(port) + 1
        return app_log(self.logs, number).read_text(errors="replace")


def app_log(logs: Path, number: int) -> Path:
    """Where app server `number` (compose's app1, app2) writes its output."""
    return logs / f"app{number}.log"


@contextlib.contextmanager
def app_servers(context: Path, image: Image, app_env: dict, count: int, logs: Path):
    """`count` app servers as compose's app1/app2 run the image: its CMD, ENV and compose's
    environment, on free ports of 127.0.0.1."""
    started = []
    try:
        for number in range(1, count + 1):
            port = free_port()
            args = image.env["GUNICORN_CMD_ARGS"]
            assert f"--bind 0.0.0.0:{image.exposed}" in args
            env = host_env(
                {
                    **image.env,
                    **app_env,
                    "GUNICORN_CMD_ARGS": args.replace(
                        f"--bind 0.0.0.0:{image.exposed}", f"--bind 127.0.0.1:{port}"
                    ),
                }
            )
            log = app_log(logs, number).open("wb")
            process = subprocess.Popen(  # noqa: S603 - the image's own CMD
                image.cmd,
                cwd=context,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            started.append((process, log, port))
        for process, _, port in started:
            # Ready as compose's `service_healthy` decides it: the image's own HEALTHCHECK.
            wait_until(
                functools.partial(healthy, healthcheck_for(image, port), {**image.env, **app_env}),
                process,
                f"app server on {port}",
                functools.partial(_logs, logs),
            )
        yield [port for _, _, port in started]
    finally:
        for process, log, _ in started:
            server_stop(process)
            log.close()


def healthcheck_for(image: Image, port: int) -> list[str]:
    """The image's HEALTHCHECK, asking `port` instead of the port the image exposes."""
    argv = [part.replace(f":{image.exposed}/", f":{port}/") for part in image.healthcheck]
    assert argv != image.healthcheck, "the HEALTHCHECK no longer asks the exposed port"
    return argv


def healthy(healthcheck: list[str], env: dict[str, str]) -> bool:
    done = subprocess.run(healthcheck, env=host_env(env), capture_output=True, timeout=30)  # noqa: S603
    return done.returncode == 0


def wait_until(ready, process: subprocess.Popen, what: str, log) -> None:
    """Wait for `ready()`; on failure, say `what` it was and show `log()` as it is by then."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}:\n{log()}")
        with contextlib.suppress(OSError):
            if ready():
                return
        time.sleep(0.3)
    pytest.fail(f"{what} not ready in {START_TIMEOUT_SECONDS} s:\n{log()}")


def _logs(directory: Path) -> str:
    return "\n".join(
        f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
        for path in sorted(directory.glob("*.log"))
    )


def nginx_config(compose: dict, *, app_ports: list[int], port: int, work: Path) -> Path:
    """compose's inline nginx configuration, its upstreams and port made ours, in a main file
    that keeps every path nginx writes under `work`."""
    site = compose["configs"]["nginx-chatshield"]["content"].replace("$$", "$")
    for number, app_port in enumerate(app_ports, start=1):
        upstream = f"server app{number}:8000;"
        assert upstream in site
        site = site.replace(upstream, f"server 127.0.0.1:{app_port};")
    assert "listen 80;" in site
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    (work / "chatshield.conf").write_text(site)
    temp = {name: work / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(exist_ok=True)
    main = work / "nginx.conf"
    main.write_text(
        "\n".join(
            [
                "user root;" if os.geteuid() == 0 else "",
                "daemon off;",
                "worker_processes 1;",
                f"pid {work / 'nginx.pid'};",
                f"error_log {work / 'nginx-error.log'} warn;",
                "events { worker_connections 64; }",
                "http {",
                "    access_log off;",
                *(f"    {name}_temp_path {path};" for name, path in temp.items() if name != "body"),
                f"    client_body_temp_path {temp['body']};",
                f"    include {work / 'chatshield.conf'};",
                "}",
            ]
        )
    )
    return main


@contextlib.contextmanager
def nginx_running(config: Path, port: int, work: Path) -> Iterator[None]:
    argv = [NGINX, "-e", str(work / "nginx-error.log"), "-p", str(work), "-c", str(config)]
    checked = subprocess.run(  # noqa: S603 - Debian's nginx on our own file
        [*argv, "-t"], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(  # noqa: S603
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_until(
            lambda: request(port, "/healthz", {"Host": f"localhost:{port}"})[0] == 200,
            process,
            "nginx",
            functools.partial(_logs, work),
        )
        yield
    finally:
        server_stop(process)


def request(
    port: int, path: str, headers: dict[str, str], data: bytes | None = None
) -> tuple[int, Message, bytes]:
    """One GET (or, with `data`, POST) to our own 127.0.0.1 server, redirects not followed."""

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirects)
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers)
    try:
        with opener.open(req, timeout=15) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


# --- the stack ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("container-files")
    context = work / "app"
    context.mkdir()
    context_files = build_context(context)
    image = image_read()
    compose = compose_read()

    # The Dockerfile's RUN steps, in the build context, with the ENV set before them.
    for run in image.runs:
        program = shlex.split(run)[0]
        if program in NOT_REPLAYED:
            continue
        done = shell_run(run, cwd=context, env=host_env(image.env))
        assert done.returncode == 0, f"RUN {run}\n{done.stdout}\n{done.stderr}"

    # compose's app environment, as `docker compose up` resolves it, then our addresses.
    nginx_port = free_port()
    shell = {
        "DJANGO_SECRET_KEY": "container-files-test-secret-key-0123456789abcdefghijkl",
        "POSTGRES_PASSWORD": "not-used-here",
        "PUBLIC_URL": f"https://localhost:{nginx_port}",
        "WEB_CONCURRENCY": "1",
    }
    app_env = {
        name: compose_interpolate(str(value), shell)
        for name, value in compose["x-app"]["environment"].items()
    }
    assert app_env["DATABASE_URL"].startswith("postgres://chatshield:")
    app_env["DATABASE_URL"] = f"sqlite:///{work / 'db.sqlite3'}"
    # No Redis: these servers share nothing with the suite's own (the cache is per process).
    app_env["REDIS_URL"] = ""

    # compose's one-shot migrate service, with the same environment.
    migrate = compose["services"]["migrate"]["command"]
    done = subprocess.run(  # noqa: S603 - compose's own command
        migrate,
        cwd=context,
        env=host_env({**image.env, **app_env}),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    logs = work / "logs"
    logs.mkdir()
    with app_servers(context, image, app_env, 2, logs) as ports:
        yield Stack(context, context_files, image, app_env, ports, nginx_port, logs)


@pytest.mark.parametrize(
    ("path", "kept"),
    [
        ("config/settings.py", True),
        ("config/__pycache__/settings.cpython-311.pyc", False),
        ("a/b/c.pyc", False),
        (".env", False),
        (".env.production", False),
        (".env.example", True),
        ("bench/run.py", False),
        ("contacts/bench/x.py", True),
        ("docs/screenshots/console.png", False),
        ("docs/api.md", True),
        ("chatshield.egg-info/PKG-INFO", False),
        (".git/config", False),
    ],
)
def test_dockerignore_patterns_are_read_as_docker_reads_them(path, kept):
    patterns = [".git", "**/__pycache__", "**/*.pyc", ".env", ".env.*", "!.env.example"]
    patterns += ["bench", "docs/screenshots", "*.egg-info"]
    assert dockerignore_keeps(path, patterns) is kept


def test_the_build_context_leaves_out_local_state_tests_and_tooling(stack):
    # given: the files `COPY . .` copied, before any RUN step
    copied = stack.context_files
    top = {path.split("/")[0] for path in copied}

    # then: what the image runs is there, and nothing it must not carry
    assert {"manage.py", "gunicorn.conf.py", "config/settings.py"} <= copied
    assert "static/widget/chatshield.js" in copied
    left_out = {".git", ".venv", ".ci", "tests", "bench", "build", "var", "staticfiles", ".env"}
    left_out |= {"db.sqlite3", "Dockerfile", "compose.yaml", ".pytest_cache", ".ruff_cache"}
    assert not top & left_out
    assert not any(path.endswith(".pyc") or "__pycache__" in path for path in copied)


def test_the_build_collects_the_static_files_the_app_serves(stack):
    # then: the RUN step wrote them into the image, and both servers serve them without DEBUG
    assert (stack.context / "staticfiles" / "widget" / "chatshield.js").exists()
    for port in stack.app_ports:
        status, _, body = request(
            port,
            "/static/widget/chatshield.js",
            {"Host": "localhost", "X-Forwarded-Proto": "https"},
        )
        assert status == 200, body[:300]
        assert body == (ROOT / "static" / "widget" / "chatshield.js").read_bytes()


def test_the_images_healthcheck_passes_against_a_running_server(stack):
    # given: the image's HEALTHCHECK, asked of the first server instead of its port 8000
    argv = healthcheck_for(stack.image, stack.app_ports[0])

    # when
    done = subprocess.run(  # noqa: S603 - the image's own HEALTHCHECK
        argv,
        env=host_env({**stack.image.env, **stack.app_env}),
        capture_output=True,
        text=True,
        timeout=30,
    )

    # then
    assert done.returncode == 0, done.stderr


def test_the_image_lets_a_customer_token_at_its_size_limit_through_to_the_app(stack):
    # when: a sign-in header as long as a customer-signed token may make it
    status, _, body = request(
        stack.app_ports[0],
        "/v3/auth/signinWithCustomToken",
        {"Host": "localhost", "X-Forwarded-Proto": "https", "Authorization": LONGEST_TOKEN_HEADER},
    )

    # then: the app answers it (a GET there is a 405), not gunicorn's 400 for a long header
    assert status == 405, body[:300]


@pytest.fixture(scope="module")
def behind_nginx(stack, tmp_path_factory) -> Iterator[int]:
    if NGINX is None:
        pytest.skip("nginx is not installed (.ci/run installs Debian's nginx)")
    work = tmp_path_factory.mktemp("nginx")
    config = nginx_config(
        compose_read(), app_ports=stack.app_ports, port=stack.nginx_port, work=work
    )
    with nginx_running(config, stack.nginx_port, work):
        yield stack.nginx_port


def test_nginx_passes_the_scheme_the_tls_terminator_reported_and_the_host_with_its_port(
    stack, behind_nginx
):
    # when: a request over TLS, as the terminator in front of nginx forwards it
    host = f"localhost:{behind_nginx}"
    status, headers, body = request(
        behind_nginx, "/widget/config", {"Host": host, "X-Forwarded-Proto": "https"}
    )

    # then: the app saw https (no redirect) and answered as itself (no widget token: a 401)
    assert status == 401, (status, headers, body[:300])
    assert "Strict-Transport-Security" in headers


def test_nginx_without_a_terminator_in_front_reports_plain_http_and_the_app_redirects(
    stack, behind_nginx
):
    # when: plain HTTP straight to nginx
    host = f"localhost:{behind_nginx}"
    status, headers, _ = request(behind_nginx, "/widget/config", {"Host": host})

    # then: SECURE_SSL_REDIRECT sends it to https on the same host
    assert status == 301
    assert headers["Location"] == f"https://{host}/widget/config"


def test_nginx_and_the_app_let_a_customer_token_at_its_size_limit_through(stack, behind_nginx):
    # when
    status, _, body = request(
        behind_nginx,
        "/v3/auth/signinWithCustomToken",
        {
            "Host": f"localhost:{behind_nginx}",
            "X-Forwarded-Proto": "https",
            "Authorization": LONGEST_TOKEN_HEADER,
        },
    )

    # then: neither nginx's header buffers nor gunicorn's limit turned it away
    assert status == 405, body[:300]


def test_nginx_spreads_requests_over_both_app_servers(stack, behind_nginx):
    # given: each server's log, as it is before
    logs = {port: _served_count(stack, port) for port in stack.app_ports}

    # when
    for _ in range(8):
        request(
            behind_nginx,
            "/healthz",
            {"Host": f"localhost:{behind_nginx}", "X-Forwarded-Proto": "https"},
        )

    # then: round robin reached both
    assert all(_served_count(stack, port) > logs[port] for port in stack.app_ports)


def _served_count(stack: Stack, port: int) -> int:
    return stack.log_text(port).count('"/healthz"')


def test_the_console_forms_csrf_check_passes_through_nginx(stack, behind_nginx):
    # given: the agent console's sign-in form, fetched over TLS through nginx
    host = f"localhost:{behind_nginx}"
    secure = {"Host": host, "X-Forwarded-Proto": "https"}
    status, headers, body = request(behind_nginx, "/console/login", secure)
    assert status == 200, body[:300]
    cookies = SimpleCookie()
    for header in headers.get_all("Set-Cookie") or []:
        cookies.load(header)
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1).decode()

    # when: the browser posts it, with the Origin it shows (the public host and its port),
    # which Django accepts as the Host nginx hands on or as compose's CSRF_TRUSTED_ORIGINS
    form = urlencode(
        {"csrfmiddlewaretoken": token, "username": "nobody@example.com", "password": "wrong"}
    ).encode()
    status, _, body = request(
        behind_nginx,
        "/console/login",
        {
            **secure,
            "Origin": f"https://{host}",
            "Referer": f"https://{host}/console/login",
            "Cookie": f"csrftoken={cookies['csrftoken'].value}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        data=form,
    )

    # then: the CSRF check passed, and the form says the credentials are wrong
    assert status == 200, body[:500]
    assert b"csrfmiddlewaretoken" in body


def test_a_client_cannot_choose_the_address_the_app_sees_through_nginx(stack, behind_nginx):
    # when: a client sends an X-Forwarded-For of its own choosing straight to nginx
    request_id = uuid.uuid4().hex
    status, _, _ = request(
        behind_nginx,
        "/healthz",
        {
            "Host": f"localhost:{behind_nginx}",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": "203.0.113.66",
            "X-Request-ID": request_id,
        },
    )

    # then: the app logged the address nginx saw it come from, as the throttles key on it
    assert status == 200
    records = [
        json.loads(line)
        for port in stack.app_ports
        for line in stack.log_text(port).splitlines()
        if request_id in line and line.startswith("{")
    ]
    assert [record["client_ip"] for record in records] == ["127.0.0.1"], records
