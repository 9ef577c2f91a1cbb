#!/usr/bin/env bash
# Refreshes the lock files from which the virtualenvs are built: requirements/main.lock (.venv)
# and requirements/ref.lock (.venv-ref). For each, it builds a throw-away virtualenv under
# var/lock-build/, installs the newest versions that requirements/*.txt and pyproject.toml allow,
# and writes `pip freeze` (without the project itself; torch as torch==2.13.0).
#   ./scripts/lock.sh            # both locks
#   ./scripts/lock.sh ref        # one of them
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
strict_mode
cd "$ROOT"

usage() { sed -n '2,7s/^# \{0,1\}//p' "$0" >&2; }

# write_lock NAME: resolves and writes requirements/NAME.lock.
write_lock() {
  local name="$1"
  local dir="$ROOT/var/lock-build/$name" lock="$ROOT/requirements/$name.lock"
  local frozen="$dir.freeze" inputs
  lock_spec "$name"
  step "resolving requirements/$name.lock in a throw-away virtualenv (${dir#"$ROOT"/})"
  new_venv "$dir"
  _pip "$dir" torch==2.13.0
  _pip "$dir" "${LOCK_RESOLVE[@]}"
  _pip_check "$dir"
  step "writing requirements/$name.lock"
  "$dir/bin/pip" freeze --all --exclude-editable --exclude adapter-hub >"$frozen"
  inputs="$(lock_inputs_hash "$name")"
  {
    echo "# requirements/$name.lock: exact versions for the virtualenv built from requirements/$name.txt."
    echo "# Written by ./scripts/lock.sh $name; do not edit by hand (see docs/development.md)."
    echo "# inputs: $inputs"
    sed -e '/^#/d' -e '/^-e /d' -e '/^pip==/d' -e 's/^torch==2\.13\.0+.*$/torch==2.13.0/' "$frozen"
  } >"$lock.tmp"
  grep -qx 'torch==2.13.0' "$lock.tmp"
  mv "$lock.tmp" "$lock"
  rm -rf "$dir" "$frozen"
  log "requirements/$name.lock: $(grep -c '==' "$lock") packages, $(grep -i '^transformers==' "$lock")"
}

names=()
for arg in "$@"; do
  case "$arg" in
    main | ref) names+=("$arg") ;;
    -h | --help) usage; exit 0 ;;
    *) fail "unknown argument '$arg'"; usage; exit 2 ;;
  esac
done
[ "${#names[@]}" -gt 0 ] || names=(main ref)
for name in "${names[@]}"; do write_lock "$name"; done
log "done; the virtualenvs rebuild from the new locks on the next ./scripts/test.sh or ./scripts/run-hub.sh"
