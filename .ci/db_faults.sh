#!/usr/bin/env bash
# Database faults under a live gunicorn: PostgreSQL is stopped, the API answers 503 envelopes (no
# stack trace), PostgreSQL comes back and the SAME gunicorn process serves again; nothing was left
# half written. Always restarts PostgreSQL, stops gunicorn and removes its files.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
DB=chatshield_faults
PG_VERSION=$(ls /etc/postgresql | sort -V | tail -n1)
TMP=$(mktemp -d)
GUNICORN_PID=""

pg_ctl() { pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main "$@"; }
pg_wait() {
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && return 0; sleep 0.5; done
  return 1
}
sql() { psql -h 127.0.0.1 -U postgres -d "$1" -qAtc "$2"; }

cleanup() {
  local status=$?
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctl start || true
    pg_wait || echo "db_faults: PostgreSQL did not come back" >&2
  fi
  if [ -n "$GUNICORN_PID" ] && kill -0 "$GUNICORN_PID" 2>/dev/null; then
    kill "$GUNICORN_PID" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$GUNICORN_PID" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$GUNICORN_PID" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ]; then
    echo "--- gunicorn logs" >&2
    tail -n 50 "$TMP"/gunicorn.* >&2 2>/dev/null || true
  fi
  sql postgres "drop database if exists $DB with (force)" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
  echo "db_faults: FAILED: $*" >&2
  exit 1
}

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
export DJANGO_SECRET_KEY="faults-$("$PY" -c 'import secrets; print(secrets.token_urlsafe(40))')"
export DJANGO_DEBUG=false DJANGO_ALLOWED_HOSTS=127.0.0.1 PUBLIC_URL="$BASE"
export SECURE_SSL_REDIRECT=false SESSION_COOKIE_SECURE=false CSRF_COOKIE_SECURE=false
export SECURE_HSTS_SECONDS=0 LOG_LEVEL=WARNING
export THROTTLE_ANONYMOUS_MINT_IP=100000/min THROTTLE_ANONYMOUS_MINT_WIDGET=100000/min
unset REDIS_URL

pg_wait || fail "PostgreSQL is not running"
sql postgres "drop database if exists $DB with (force)"
sql postgres "create database $DB"
"$PY" manage.py migrate --noinput -v 0
"$PY" manage.py seed_demo --org faults --output "$TMP/demo.json" 2>/dev/null
WIDGET_TOKEN=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["widget_token"])' \
  "$TMP/demo.json")

.venv/bin/gunicorn config.wsgi --bind "127.0.0.1:$PORT" --workers 1 --worker-class gthread \
  --threads 4 --timeout 30 --graceful-timeout 5 --error-logfile "$TMP/gunicorn.log" \
  >"$TMP/gunicorn.out" 2>&1 &
GUNICORN_PID=$!
for _ in $(seq 1 60); do curl -fsS "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.5; done

# request METHOD PATH: prints the status code; the body is left in $TMP/body.
request() {
  local args=(-sS -o "$TMP/body" -w '%{http_code}' --max-time 15 -X "$1")
  if [ "$1" = POST ]; then
    args+=(-H 'Content-Type: application/json' -H "X-Widget-Token: $WIDGET_TOKEN" -d '{}')
  fi
  curl "${args[@]}" "$BASE$2"
}
expect() {
  local want=$1 method=$2 path=$3 got
  got=$(request "$method" "$path")
  [ "$got" = "$want" ] || fail "$method $path answered $got, expected $want: $(head -c 500 "$TMP/body")"
  echo "ok: $method $path -> $got"
}
expect_503_envelope() {
  "$PY" - "$TMP/body" <<'EOF' || fail "the 503 body is not the service_unavailable envelope"
import json, sys
raw = open(sys.argv[1], encoding="utf-8").read()
body = json.loads(raw)
assert body["error"]["code"] == "service_unavailable", body
assert set(body["error"]) == {"code", "message"}, body
assert "Traceback" not in raw and "psycopg" not in raw and "File \"" not in raw, raw
EOF
}
half_written() {
  sql "$DB" "select count(*) from contacts_contact c
             where not exists (select 1 from contacts_device d where d.contact_id = c.id)"
}
workers() { pgrep -P "$GUNICORN_PID" | sort | tr '\n' ' '; }

# given: a healthy server
expect 200 GET /readyz
expect 201 POST /widget/contacts/unverified
WORKERS_BEFORE=$(workers)
CONTACTS_BEFORE=$(sql "$DB" "select count(*) from contacts_contact")

# when: PostgreSQL goes away
pg_ctl stop -m fast
echo "PostgreSQL stopped at $(date -u +%H:%M:%S)"

# then: 503s with a JSON body and no stack trace
expect 503 GET /readyz
"$PY" -c 'import json, sys; json.load(open(sys.argv[1]))' "$TMP/body" || fail "/readyz 503 is not JSON"
expect 503 POST /widget/contacts/unverified
expect_503_envelope
expect 503 POST /widget/contacts/unverified
expect_503_envelope

# when: PostgreSQL comes back
pg_ctl start
pg_wait || fail "PostgreSQL did not come back"
echo "PostgreSQL started at $(date -u +%H:%M:%S)"

# then: the same gunicorn process and worker serve again
for _ in $(seq 1 30); do [ "$(request GET /readyz)" = 200 ] && break; sleep 1; done
kill -0 "$GUNICORN_PID" 2>/dev/null || fail "gunicorn died"
[ "$(workers)" = "$WORKERS_BEFORE" ] || fail "gunicorn workers changed: $WORKERS_BEFORE -> $(workers)"
expect 200 GET /readyz
expect 201 POST /widget/contacts/unverified

# and: the outage wrote nothing, and no contact lacks its device
[ "$(sql "$DB" "select count(*) from contacts_contact")" = "$((CONTACTS_BEFORE + 1))" ] \
  || fail "contact count moved during the outage"
[ "$(half_written)" = 0 ] || fail "a contact without a device was written"
if grep -q "Traceback" "$TMP"/gunicorn.*; then fail "gunicorn logged a traceback"; fi
echo "db_faults: passed (gunicorn pid $GUNICORN_PID served before and after the outage)"
