#!/usr/bin/env bash
# The whole test suite, from a clean clone: starts PostgreSQL and Redis if they are down, installs
# chromium for the browser tests when it is missing, builds both virtualenvs from their locks
# (main: transformers 5.x; ref: adapters 1.3.0 + transformers 4.57), checks
# `./scripts/run-hub.sh --check` in a temporary HUB_VAR_DIR, then runs every test.
#   ./scripts/test.sh [PYTEST ARGS]             # the whole suite (CI); e.g. -k upload -x
#   ./scripts/test.sh --newest [PYTEST ARGS]    # client and parity suites on the newest transformers
# Extra arguments go to every pytest run. It ends with 'tests: N passed, N failed, N skipped'.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
strict_mode
cd "$ROOT"

REPORT_DIR="$ROOT/var/test-reports"
NEWEST_DIR="$ROOT/var/newest"
REPORTS=()
STATUS=0
newest=0
ARGS=()
for arg in "$@"; do
  case "$arg" in
    --newest) newest=1 ;;
    -h | --help) sed -n '2,8s/^# \{0,1\}//p' "$0" >&2; exit 0 ;;
    *) ARGS+=("$arg") ;;
  esac
done

# run_pytest NAME PYTHON PYTEST_ARGS...: one pytest run, reported in $REPORT_DIR/NAME.xml.
run_pytest() {
  local name="$1" py="$2" rc=0
  shift 2
  REPORTS+=("$REPORT_DIR/$name.xml")
  "$py" -m pytest "$@" -p no:cacheprovider --junitxml="$REPORT_DIR/$name.xml" ${ARGS[@]+"${ARGS[@]}"} || rc=$?
  if [ "$rc" -eq 5 ] && [ "${#ARGS[@]}" -gt 0 ]; then
    log "$name: no test matches the extra arguments here"
    rc=0
  fi
  if [ "$rc" -ne 0 ]; then
    fail "pytest run '$name' exited with status $rc"
    STATUS=1
  fi
}

# hub_check: the README's first command, set-up only, in a throw-away data folder with the
# embedded defaults; its result is one test in the summary.
hub_check() {
  step "checking ./scripts/run-hub.sh --check (embedded defaults, temporary HUB_VAR_DIR)"
  local var_dir rc=0 out="$REPORT_DIR/run-hub-check.log"
  var_dir="$(mktemp -d)"
  env -u DATABASE_URL -u HUB_S3_BUCKET -u REDIS_URL -u CELERY_BROKER_URL -u HUB_WEIGHTS_DIR \
    -u HUB_UPLOAD_TMP_DIR HUB_VAR_DIR="$var_dir" "$ROOT/scripts/run-hub.sh" --check >"$out" 2>&1 || rc=$?
  rm -rf "$var_dir"
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$out" >&2
    fail "./scripts/run-hub.sh --check exited with status $rc (whole output: ${out#"$ROOT"/})"
    STATUS=1
  else
    log "run-hub.sh --check passed"
  fi
  REPORTS+=("$REPORT_DIR/run-hub-check.xml")
  "$PYTHON" scripts/summarize_reports.py --record "$REPORT_DIR/run-hub-check.xml" "run-hub.sh --check" "$rc" "$out"
}

# ensure_browser: Debian's chromium for tests/browser (scripts/ensure-chromium.sh installs it when
# missing). Without one the run goes on: the browser tests skip locally and fail in CI.
ensure_browser() {
  [ -x "$ROOT/scripts/ensure-chromium.sh" ] || return 0
  local rc=0
  "$ROOT/scripts/ensure-chromium.sh" || rc=$?
  if [ "$rc" -ne 0 ]; then
    warn "no usable chromium (scripts/ensure-chromium.sh exited with status $rc): tests/browser will skip, or fail with CI=true"
  fi
}

whole_suite() {
  ensure_postgres
  ensure_redis
  ensure_browser
  main_venv
  ref_venv
  hub_check
  step "main virtualenv: hub, API, storage, client on transformers $(venv_version .venv transformers)"
  run_pytest main .venv/bin/python tests --ignore=tests/parity
  step "second virtualenv: client on transformers $(venv_version .venv-ref transformers), parity with adapters $(venv_version .venv-ref adapters)"
  run_pytest ref .venv-ref/bin/python tests/client tests/parity -p no:django
}

# newest_venv NAME LINE REQUIREMENTS...: a throw-away virtualenv under var/newest/ with the newest
# transformers that REQUIREMENTS and pyproject.toml allow, which must be on the LINE (e.g. 5.).
newest_venv() {
  local name="$1" line="$2" dir="$NEWEST_DIR/$1" version locked
  shift 2
  step "building ${dir#"$ROOT"/} with the newest transformers $line* (resolved now)"
  new_venv "$dir"
  _pip "$dir" torch==2.13.0
  _pip "$dir" "$@" -e "$ROOT"
  _pip_check "$dir"
  version="$(venv_version "$dir" transformers)"
  locked="$(grep -h -i '^transformers==' requirements/main.lock requirements/ref.lock | sed 's/.*==//' | paste -sd' ')"
  log "${dir#"$ROOT"/}: transformers $version (the locks have: $locked)"
  if [[ "$version" != "$line"* ]]; then
    fail "${dir#"$ROOT"/} resolved transformers $version, not $line*"
    return 1
  fi
}

newest() {
  newest_venv transformers-5 "5." -r requirements/main.txt -r requirements/client-test.txt
  newest_venv transformers-4.57 "4.57." -r requirements/ref.txt
  log "adapters $(venv_version "$NEWEST_DIR/transformers-4.57" adapters) in ${NEWEST_DIR#"$ROOT"/}/transformers-4.57"
  step "client suite on transformers $(venv_version "$NEWEST_DIR/transformers-5" transformers)"
  run_pytest newest-5 "$NEWEST_DIR/transformers-5/bin/python" tests/client -p no:django
  step "client and parity suites on transformers $(venv_version "$NEWEST_DIR/transformers-4.57" transformers)"
  run_pytest newest-4.57 "$NEWEST_DIR/transformers-4.57/bin/python" tests/client tests/parity -p no:django
}

mkdir -p "$REPORT_DIR"
rm -f "$REPORT_DIR"/*.xml
if [ "$newest" = 1 ]; then newest; else whole_suite; fi
step "summary"
"$PYTHON" scripts/summarize_reports.py "${REPORTS[@]}" || STATUS=1
exit "$STATUS"
