"""gunicorn settings for every chatshield server: gunicorn reads ./gunicorn.conf.py from the
directory it starts in (the image's /app, `make run`, the benchmarks, the two-server tests).

Everything else (bind, workers, limits) stays on the command line and in the environment
(docs/deploy.md); this file only keeps credentials out of gunicorn's own error log.
"""

logger_class = "config.gunicorn_logging.RedactingLogger"
