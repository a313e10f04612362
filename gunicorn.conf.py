"""gunicorn settings for every chatshield server: gunicorn reads ./gunicorn.conf.py from the
directory it starts in (the image's /app, `make run`, the benchmarks, the two-server tests).

Everything else (bind, workers, limits) stays on the command line and in the environment
(docs/deploy.md); this file only keeps credentials out of gunicorn's own error log and keeps
gunicorn's control socket off unless a server is given a path of its own.
"""

import os

logger_class = "config.gunicorn_logging.RedactingLogger"

# gunicorn 25.1 and later listen on a control socket for `gunicornc` (worker counts, reload,
# shutdown), by default at one path per user: $XDG_RUNTIME_DIR/gunicorn.ctl or
# ~/.gunicorn/gunicorn.ctl. A second server started by the same user on the same host (two app
# servers on one machine, `make run` beside `make bench`) deletes the first one's socket and
# listens there itself, and whichever stops first deletes the path, so `gunicornc` reaches the
# wrong server or none. Off, then, unless GUNICORN_CONTROL_SOCKET names this server's own path.
# Older gunicorns ignore both settings.
_own_control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
if _own_control_socket:
    control_socket = _own_control_socket
control_socket_disable = not _own_control_socket
