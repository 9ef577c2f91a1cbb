#!/usr/bin/env bash
# Runs the hub with its embedded defaults on http://127.0.0.1:8000: SQLite, filesystem storage and
# an embedded broker under var/ (or $HUB_VAR_DIR), no Redis or S3 needed. Builds the virtualenv on
# first use, migrates, loads the standard tasks, prints a demo upload token, starts a validation
# worker, publishes the demo adapters and serves. HUB_PORT: another port.
#   ./scripts/run-hub.sh            # set up, then serve (Ctrl-C stops the server and the worker)
#   ./scripts/run-hub.sh --check    # every set-up step and the demo's verdicts, then exit 0
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
strict_mode
cd "$ROOT"

usage() { sed -n '2,6s/^# \{0,1\}//p' "$0" >&2; }

check=0
for arg in "$@"; do
  case "$arg" in
    --check) check=1 ;;
    -h | --help) usage; exit 0 ;;
    *) fail "unknown argument '$arg'"; usage; exit 2 ;;
  esac
done

export DJANGO_SETTINGS_MODULE=hubsite.settings.dev
VAR_DIR="${HUB_VAR_DIR:-$ROOT/var}"
PY="$ROOT/.venv/bin/python"
PORT="${HUB_PORT:-8000}"
TOKEN=""
if [ -n "${DATABASE_URL:-}" ]; then DB_LABEL="the database at \$DATABASE_URL"; else DB_LABEL="$VAR_DIR/hub.sqlite3"; fi

# The set-up steps, in order. Both modes run exactly this list, so a new step goes here (and in
# a function below) and `--check` (run by ./scripts/test.sh) proves it too.
SETUP_STEPS=(setup_venv setup_var_dir setup_migrate setup_standard_tasks setup_token setup_worker setup_demo)
# What --check proves on top of them, before it stops the worker.
CHECK_STEPS=(check_demo_verdicts check_demo_client)
WORKER_PID=""
IDENT="sentiment/rotten-tomatoes@demo"

setup_venv() { main_venv; }

setup_var_dir() {
  step "preparing the data folder $VAR_DIR"
  mkdir -p "$VAR_DIR"
}

setup_migrate() {
  step "migrating $DB_LABEL"
  "$PY" manage.py migrate --noinput >/dev/null
}

setup_standard_tasks() {
  step "loading the standard tasks"
  "$PY" manage.py loaddata standard_tasks >/dev/null
}

setup_token() {
  step "creating the demo upload token (user 'demo', organisation 'demo')"
  TOKEN="$("$PY" manage.py hubtoken --user demo --org demo --role owner --scope upload --expires-days 30)"
  if [[ "$TOKEN" != ahub_* ]]; then
    fail "step '$STEP': manage.py hubtoken printed '$TOKEN' instead of a token"
    return 1
  fi
}

stop_worker() {
  if [ -n "$WORKER_PID" ] && kill -0 "$WORKER_PID" 2>/dev/null; then
    kill -TERM "$WORKER_PID" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$WORKER_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$WORKER_PID" 2>/dev/null || true
  fi
  WORKER_PID=""
}

setup_worker() {
  step "starting a validation worker (embedded broker under ${HUB_BROKER_DIR:-$VAR_DIR/broker}; log: $VAR_DIR/logs/worker.log)"
  mkdir -p "$VAR_DIR/logs"
  # -B: the periodic sweepers run inside this worker (one worker in the embedded mode)
  "$PY" -m celery -A hubsite worker -Q validation --concurrency 1 --prefetch-multiplier 1 -B \
    -s "$VAR_DIR/celerybeat-schedule" --loglevel INFO >>"$VAR_DIR/logs/worker.log" 2>&1 &
  WORKER_PID=$!
  trap stop_worker EXIT
  if ! "$PY" manage.py workerping --timeout 180; then
    fail "step '$STEP': no worker answered; the end of $VAR_DIR/logs/worker.log:"
    tail -n 30 "$VAR_DIR/logs/worker.log" >&2
    return 1
  fi
}

setup_demo() {
  step "publishing the demo adapters ($IDENT, validated and scored by the worker)"
  "$PY" -m demo.seed
}

check_demo_verdicts() {
  step "waiting for the demo adapters' verdicts (valid, with verified scores)"
  "$PY" -m demo.seed --wait "${HUB_CHECK_WAIT:-900}"
}

check_demo_client() {
  local port url
  port="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  url="http://127.0.0.1:$port"
  step "classifying a sentence with the banner's client line against a server on $url"
  "$PY" manage.py runserver "127.0.0.1:$port" --noreload >>"$VAR_DIR/logs/check-server.log" 2>&1 &
  local server=$!
  local answer=""
  for _ in $(seq 1 60); do
    "$PY" -c "import urllib.request; urllib.request.urlopen('$url/api/v1/')" 2>/dev/null && break
    sleep 0.5
  done
  answer="$(ADAPTERS_HUB_URL="$url" ADAPTERS_CACHE="$VAR_DIR/client-cache" "$PY" -c "$(demo_client_line)" 2>/dev/null)" || true
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  case "$answer" in
    *positive*) log "the demo adapter answered: $answer" ;;
    *) fail "step '$STEP': expected a positive label, got '$answer' (server log: $VAR_DIR/logs/check-server.log)"; return 1 ;;
  esac
}

demo_client_line() {
  printf '%s' "import adapters_client; print(adapters_client.pipeline('$IDENT')('A warm, funny and moving film.'))"
}

for setup_step in "${SETUP_STEPS[@]}"; do "$setup_step"; done

if [ "$check" = 1 ]; then
  for check_step in "${CHECK_STEPS[@]}"; do "$check_step"; done
  stop_worker
  log "check passed: ${#SETUP_STEPS[@]} set-up steps (${SETUP_STEPS[*]}) and ${#CHECK_STEPS[@]} checks (${CHECK_STEPS[*]}) succeeded; not serving (--check)"
  exit 0
fi

cat >&2 <<MSG

  Adapter hub: http://127.0.0.1:${PORT}/   API: http://127.0.0.1:${PORT}/api/v1/   docs: http://127.0.0.1:${PORT}/api/docs/
  Demo upload token (user 'demo', organisation 'demo'; valid 30 days):

    export ADAPTERS_HUB_URL=http://127.0.0.1:${PORT}
    export ADAPTERS_HUB_TOKEN=${TOKEN}

  The worker validates and scores the demo adapters in the background (a minute or two the first
  time: http://127.0.0.1:${PORT}/search/?q=movie+review+sentiment shows their status). Then:

    export ADAPTERS_HUB_URL=http://127.0.0.1:${PORT}
    .venv/bin/python -c "$(demo_client_line)"

MSG
step "serving on 127.0.0.1:${PORT} (Ctrl-C stops the server and the worker)"
"$PY" manage.py runserver "127.0.0.1:${PORT}" --noreload
