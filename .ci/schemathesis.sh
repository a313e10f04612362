#!/usr/bin/env bash
# Schemathesis against a live gunicorn on a throwaway PostgreSQL database (chatshield_fuzz):
# no 5xx, responses match the OpenAPI schema, every status a route returns is documented.
# Runs as the widget, as an all-scopes API key and as the org owner, in that order (the owner
# run may rotate the widget token and revoke keys). Always stops gunicorn and removes its files.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
DB=chatshield_fuzz
PG="psql -h 127.0.0.1 -U postgres -d postgres -qAtc"
EXAMPLES=${FUZZ_MAX_EXAMPLES:-20}
# One time budget for all the runs together; a run still going when it is spent fails.
DEADLINE=$((SECONDS + ${FUZZ_TIME_BUDGET:-420}))
TMP=$(mktemp -d)
GUNICORN_PID=""

cleanup() {
  if [ -n "$GUNICORN_PID" ] && kill -0 "$GUNICORN_PID" 2>/dev/null; then
    kill "$GUNICORN_PID" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$GUNICORN_PID" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$GUNICORN_PID" 2>/dev/null || true
  fi
  $PG "drop database if exists $DB with (force)" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

json_field() { "$PY" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
export DJANGO_SECRET_KEY="fuzz-$("$PY" -c 'import secrets; print(secrets.token_urlsafe(40))')"
export DJANGO_DEBUG=false DJANGO_ALLOWED_HOSTS=127.0.0.1 PUBLIC_URL="$BASE"
export SECURE_SSL_REDIRECT=false SESSION_COOKIE_SECURE=false CSRF_COOKIE_SECURE=false
export SECURE_HSTS_SECONDS=0 LOG_LEVEL=WARNING
# Throttles and lockouts are tested elsewhere; here they would only hide the routes behind 429s.
export THROTTLE_AGENT_SIGNIN_IP=100000/min THROTTLE_ANONYMOUS_MINT_IP=100000/min
export THROTTLE_ANONYMOUS_MINT_WIDGET=100000/min THROTTLE_AUTHENTICATE_USER_KEY=100000/min
export THROTTLE_CUSTOM_TOKEN_IP=100000/min LOCKOUT_MAX_FAILURES=100000
export LOCKOUT_IP_MAX_FAILURES=100000
unset REDIS_URL

$PG "drop database if exists $DB with (force)"
$PG "create database $DB"
"$PY" manage.py migrate --noinput -v 0
"$PY" manage.py seed_demo --org fuzz --output "$TMP/demo.json" 2>/dev/null
read_demo() { json_field "$1" <"$TMP/demo.json"; }
ORG_ID=$(read_demo org_id)
WIDGET_TOKEN=$(read_demo widget_token)
WIDGET_API_KEY=$(read_demo api_key)
read -r ALL_SCOPES_KEY CONVERSATION_ID CONTACT_ID < <("$PY" manage.py shell -c "
from contacts.models import Contact
from conversations.models import Conversation
from identity.models import ApiKey, Organization
from identity.services import api_key_create
org = Organization.objects.get(slug='fuzz')
key = api_key_create(org=org, created_by=None, name='fuzz all scopes',
                     scopes=list(ApiKey.Scope.values), expires_at=None).key
print(key, Conversation.objects.filter(org=org).first().pk,
      Contact.objects.filter(org=org).first().pk)" | tail -n1)
[ -n "$CONTACT_ID" ] || { echo "schemathesis: could not create the all-scopes key" >&2; exit 1; }

.venv/bin/gunicorn config.wsgi --bind "127.0.0.1:$PORT" --workers 1 --worker-class gthread \
  --threads 4 --timeout 30 --graceful-timeout 5 --error-logfile "$TMP/gunicorn.log" \
  >"$TMP/gunicorn.out" 2>&1 &
GUNICORN_PID=$!
for _ in $(seq 1 60); do curl -fsS "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fsS "$BASE/readyz" >/dev/null

post_json() {
  curl -fsS -X POST -H 'Content-Type: application/json' "$@"
}
CONTACT_TOKEN=$(post_json -H "X-Widget-Token: $WIDGET_TOKEN" -d '{}' \
  "$BASE/widget/contacts/unverified" | json_field token)
OWNER_TOKEN=$(post_json -d "{\"email\": \"$(read_demo admin_email)\", \
\"password\": \"$(read_demo admin_password)\"}" "$BASE/api/v1/auth/token" | json_field access)

# Path parameters name seeded rows, so the routes reach their views instead of a 404.
cat >"$TMP/schemathesis.toml" <<EOF
[parameters]
"path.org_id" = "$ORG_ID"
"path.id" = "$CONVERSATION_ID"
"path.contact_id" = "$CONTACT_ID"
EOF

failed=0
fuzz() {
  local name=$1
  shift
  local budget=$((DEADLINE - SECONDS))
  printf '\n--- schemathesis: %s (%ss of budget left)\n' "$name" "$budget"
  if [ "$budget" -le 0 ]; then
    echo "schemathesis: time budget spent before this run" >&2
    failed=1
    return
  fi
  if ! (cd "$TMP" && timeout "$budget" "$OLDPWD/.venv/bin/schemathesis" \
    --config-file "$TMP/schemathesis.toml" run "$BASE/api/schema/" \
    --checks not_a_server_error,status_code_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing --max-examples "$EXAMPLES" --seed 8 \
    --generation-database none --request-timeout 10 --no-color "$@"); then
    failed=1
  fi
}

fuzz "widget routes (widget token + contact token)" \
  --include-path-regex '^/widget/(config|me|contacts/(unverified|adopt)|sessions)' \
  -H "X-Widget-Token: $WIDGET_TOKEN" -H "Authorization: Bearer $CONTACT_TOKEN"
fuzz "v3 routes and authenticate-user (API key with widget:authenticate)" \
  --include-path-regex '^/(v3/auth/|widget/authenticate-user)' \
  -H "Authorization: Bearer $WIDGET_API_KEY"
fuzz "org routes (API key with every scope)" \
  --include-path-regex '^/api/v1/orgs/\{org_id\}/(contacts|conversations)' \
  -H "Authorization: Bearer $ALL_SCOPES_KEY"
fuzz "org and auth routes (owner's agent JWT)" \
  --include-path-regex '^/(api/v1/|readyz|healthz)' \
  -H "Authorization: Bearer $OWNER_TOKEN"

# Django logs to gunicorn's stderr (gunicorn.out); gunicorn itself to gunicorn.log.
if grep -q "Traceback" "$TMP"/gunicorn.* 2>/dev/null; then
  echo "gunicorn logged a traceback:" >&2
  tail -n 100 "$TMP"/gunicorn.* >&2
  failed=1
fi
if [ "$failed" -ne 0 ]; then
  echo "schemathesis: FAILED" >&2
  exit 1
fi
echo "schemathesis: passed"
