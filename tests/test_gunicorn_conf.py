"""gunicorn.conf.py: gunicorn's control socket is off unless a server is given a path of its own.

gunicorn 25.1 and later listen on a control socket for `gunicornc`, by default at one path per
user; a second server of the same user on the same host takes that path over from the first.
"""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import gunicorn
import pytest
from django.conf import settings
from gunicorn.app.base import Application

from bench.run import free_port, server_stop, wait_healthy

CONF = Path(settings.BASE_DIR) / "gunicorn.conf.py"
GUNICORN = Path(sys.executable).parent / "gunicorn"
START_TIMEOUT_SECONDS = 30
HAS_CONTROL_SOCKET = tuple(int(part) for part in gunicorn.__version__.split(".")[:2]) >= (25, 1)


class _ConfiguredAsServed(Application):
    """gunicorn's settings after it reads gunicorn.conf.py, as `gunicorn config.wsgi` reads it."""

    def init(self, parser, opts, args):
        return None

    def load_config(self):
        self.load_config_from_file(str(CONF))

    def load(self):
        return None


def _settings(monkeypatch, **environ):
    monkeypatch.delenv("GUNICORN_CONTROL_SOCKET", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return _ConfiguredAsServed().cfg


def test_the_control_socket_is_off_by_default(monkeypatch):
    # when
    cfg = _settings(monkeypatch)

    # then
    assert cfg.control_socket_disable is True
    assert cfg.logger_class.__name__ == "RedactingLogger"


def test_gunicorn_control_socket_names_this_servers_own_socket(monkeypatch, tmp_path):
    # when
    cfg = _settings(monkeypatch, GUNICORN_CONTROL_SOCKET=str(tmp_path / "app1.ctl"))

    # then
    assert cfg.control_socket_disable is False
    assert cfg.control_socket == str(tmp_path / "app1.ctl")


def test_an_empty_gunicorn_control_socket_leaves_it_off(monkeypatch):
    # when
    cfg = _settings(monkeypatch, GUNICORN_CONTROL_SOCKET="")

    # then
    assert cfg.control_socket_disable is True


@contextlib.contextmanager
def _server(tmp_path: Path, name: str, **environ):
    """One gunicorn (one worker, SQLite, DEBUG) on 127.0.0.1, stopped with its process group."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "XDG_RUNTIME_DIR", "GUNICORN_CONTROL_SOCKET"}
    }
    env.update(
        HOME=str(tmp_path / "home"),
        DJANGO_DEBUG="true",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        **environ,
    )
    port = free_port()
    log = (tmp_path / f"gunicorn-{name}.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - a fixed argv and a port number
        [str(GUNICORN), "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        try:
            wait_healthy(f"http://127.0.0.1:{port}", process, timeout=START_TIMEOUT_SECONDS)
        except RuntimeError as exc:
            pytest.fail(f"gunicorn {name}: {exc}\n{_log_text(tmp_path, name)}")
        yield process
    finally:
        server_stop(process)
        log.close()


def _log_text(tmp_path: Path, name: str) -> str:
    return (tmp_path / f"gunicorn-{name}.log").read_text(errors="replace")


def _arbiter_pid(path: Path) -> int:
    from gunicorn.ctl.client import ControlClient

    with ControlClient(str(path), timeout=5) as client:
        return client.send_command("show", ["all"])["arbiter"]["pid"]


@pytest.mark.skipif(not HAS_CONTROL_SOCKET, reason="gunicorn before 25.1 has no control socket")
def test_two_servers_of_one_user_open_no_shared_control_socket(tmp_path):
    # given: two servers of the same user, on the same host, with the same home
    with _server(tmp_path, "one"), _server(tmp_path, "two"):
        # then: neither listens at gunicorn's per-user default path, nor anywhere
        assert not (tmp_path / "home" / ".gunicorn").exists()
        for name in ("one", "two"):
            assert "Control socket" not in _log_text(tmp_path, name)


@pytest.mark.skipif(not HAS_CONTROL_SOCKET, reason="gunicorn before 25.1 has no control socket")
def test_servers_given_their_own_control_sockets_each_answer_on_their_own(tmp_path):
    # given
    one, two = tmp_path / "one.ctl", tmp_path / "two.ctl"
    with _server(tmp_path, "one", GUNICORN_CONTROL_SOCKET=str(one)) as first:
        with _server(tmp_path, "two", GUNICORN_CONTROL_SOCKET=str(two)) as second:
            # then: each socket reaches its own server
            assert _arbiter_pid(one) == first.pid
            assert _arbiter_pid(two) == second.pid

        # when: the second stops
        # then: the first's socket is still there and still its own
        assert not two.exists()
        assert _arbiter_pid(one) == first.pid
    assert not (tmp_path / "home" / ".gunicorn").exists()
