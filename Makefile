# chatshield: `make run` serves the demo, `make test` runs the whole suite. Needs python3.11 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
# Test processes (pytest-xdist); each gets its own test database.
PYTEST_WORKERS ?= 2

.PHONY: install run test test-postgres screenshots lint fmt bench bench-scale clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# A local .env with a random secret key, HTTP-friendly cookies and demo mode, written once,
# readable by its owner only (it holds the secret key).
.env:
	umask 077 && $(BIN)/python -c "import secrets; print('\n'.join(['DJANGO_SECRET_KEY=' + secrets.token_urlsafe(50), 'DEMO_MODE=true', 'SECURE_SSL_REDIRECT=false', 'SESSION_COOKIE_SECURE=false', 'CSRF_COOKIE_SECURE=false', 'SECURE_HSTS_SECONDS=0', 'PUBLIC_URL=http://$(HOST):$(PORT)']))" > .env
	@echo "wrote .env (local development settings; see .env.example)"

run: install .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	@mkdir -p var
	$(BIN)/python manage.py seed_demo --output var/demo.json
	@$(BIN)/python -c "import json; d = json.load(open('var/demo.json')); u = 'http://$(HOST):$(PORT)'; print('\n'.join(['', 'chatshield is starting on ' + u, '  admin:       ' + u + '/admin/   ' + d['admin_email'] + ' / ' + (d['admin_password'] or '(see the warning above)'), '  agent:       ' + d['agent_email'] + ' / ' + (d['agent_password'] or '(see the warning above)'), '  console:     ' + u + '/console/', '  playground:  ' + u + '/playground/', '  API docs:    ' + u + '/api/docs/', '  all demo credentials: var/demo.json', '']))"
	$(BIN)/gunicorn config.wsgi --bind $(HOST):$(PORT) --workers 1 --threads 8 --worker-class gthread --limit-request-field_size 16384

test: install
	@test -x /usr/bin/chromium || echo "NOTE: /usr/bin/chromium is missing, so the browser tests (tests/e2e) will be SKIPPED. Install Debian's chromium to run them."
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || echo "NOTE: nginx is missing, so the tests of compose.yaml's nginx configuration (tests/test_container_files.py) will be SKIPPED. Install Debian's nginx to run them."
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS)

test-postgres: install
	DATABASE_URL=postgres://postgres@127.0.0.1:5432/test $(BIN)/python -m pytest -n $(PYTEST_WORKERS)

# Regenerate the README's screenshots from the browser tests (needs /usr/bin/chromium).
screenshots: install
	CHATSHIELD_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest tests/e2e

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	@command -v wrk >/dev/null || (echo "installing wrk (Debian package) for the load generator"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)
	$(BIN)/python bench/run.py

# 1M contacts, 1M conversations and 5M messages on a throwaway database; about ten minutes.
bench-scale: install
	$(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
