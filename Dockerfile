# chatshield app server: gunicorn serving config.wsgi on :8000 as a non-root user.
# See docs/deploy.md. Build: docker build -t chatshield .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin chatshield

# Dependencies first, in their own layer: pyproject.toml lists them (the project itself ships
# no package, `packages = []`), so code changes do not reinstall them.
COPY pyproject.toml README.md ./
RUN pip install .

COPY . .
# collectstatic only imports settings; the throwaway key (50 characters or more, as settings
# require with DEBUG off) never reaches a running container.
RUN DJANGO_SECRET_KEY=collectstatic-only-throwaway-key-never-in-a-running-container python manage.py collectstatic --noinput --verbosity 0

USER chatshield
EXPOSE 8000

# Sync workers, from WEB_CONCURRENCY (one per core; docs/deploy.md says when to add more),
# behind nginx, which buffers slow clients; every other setting can be replaced by
# setting GUNICORN_CMD_ARGS, and FORWARDED_ALLOW_IPS names the proxies allowed to send
# X-Forwarded-Proto (gunicorn reads both variables itself). No gunicorn access log: the app logs
# each request as JSON without its query string (docs/deploy.md). Header fields up to 16 KiB, so
# that a customer-signed token at its 8 KiB limit (plus "JWT ") reaches the app.
ENV WEB_CONCURRENCY=2 \
    GUNICORN_CMD_ARGS="--bind 0.0.0.0:8000 --worker-class sync --timeout 30 --graceful-timeout 30 --max-requests 2000 --max-requests-jitter 200 --limit-request-field_size 16384"

# Liveness: /healthz answers 200, asked with the first allowed host name so ALLOWED_HOSTS passes.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; host = os.environ.get('DJANGO_ALLOWED_HOSTS', '127.0.0.1').split(',')[0].strip().lstrip('.').replace('*', 'localhost'); u.urlopen(u.Request('http://127.0.0.1:8000/healthz', headers={'Host': host}), timeout=2)"]

CMD ["gunicorn", "config.wsgi"]
