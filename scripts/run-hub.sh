#!/usr/bin/env bash
# Runs the hub with its embedded defaults on http://127.0.0.1:8000: SQLite and filesystem storage
# under var/, no Redis or S3 needed. Builds the virtualenv on first use, migrates, loads the
# standard tasks and prints a demo upload token. Set HUB_PORT to use another port.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
export DJANGO_SETTINGS_MODULE=hubsite.settings.dev
main_venv
PY="$ROOT/.venv/bin/python"
mkdir -p var
log "migrating the embedded database (var/hub.sqlite3)"
"$PY" manage.py migrate --noinput >/dev/null
"$PY" manage.py loaddata standard_tasks >/dev/null
token="$("$PY" manage.py hubtoken --user demo --org demo --role owner --scope upload --expires-days 30)"
port="${HUB_PORT:-8000}"
cat >&2 <<MSG

  Adapter hub: http://127.0.0.1:${port}/   API: http://127.0.0.1:${port}/api/v1/   docs: http://127.0.0.1:${port}/api/docs/
  Demo upload token (user 'demo', organisation 'demo'; valid 30 days):

    export ADAPTERS_HUB_URL=http://127.0.0.1:${port}
    export ADAPTERS_HUB_TOKEN=${token}

MSG
exec "$PY" manage.py runserver "127.0.0.1:${port}" --noreload
