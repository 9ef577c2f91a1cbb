#!/usr/bin/env bash
# The whole test suite, from a clean clone: starts PostgreSQL and Redis if they are down,
# builds both virtualenvs (main: transformers 5.x; ref: adapters 1.3.0 + transformers 4.57),
# then runs every test. Extra arguments go to both pytest runs (e.g. -k upload, -x).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_postgres || exit 1
ensure_redis || exit 1
main_venv || { log "could not build .venv"; exit 1; }
ref_venv || { log "could not build .venv-ref"; exit 1; }

mkdir -p var/test-reports
rm -f var/test-reports/*.xml
status=0

log "main virtualenv: hub, API, storage, client on transformers $(.venv/bin/python -c 'import transformers; print(transformers.__version__)')"
.venv/bin/python -m pytest tests --ignore=tests/parity -p no:cacheprovider \
  --junitxml=var/test-reports/main.xml "$@" || status=1

log "second virtualenv: client on transformers $(.venv-ref/bin/python -c 'import transformers; print(transformers.__version__)') and parity with adapters $(.venv-ref/bin/python -c 'import adapters; print(adapters.__version__)')"
.venv-ref/bin/python -m pytest tests/client tests/parity -p no:cacheprovider -p no:django \
  --junitxml=var/test-reports/ref.xml "$@" || status=1

.venv/bin/python scripts/summarize_reports.py var/test-reports/main.xml var/test-reports/ref.xml || status=1
exit $status
