#!/usr/bin/env bash
# Installs datacontract-cli, pinned, into a virtualenv of its own in the tool cache, reusing
# it when it is already there. The ODCS export is checked with it (`datacontract lint`), an
# outside client the project does not control. It gets its own virtualenv because its
# dependencies do not resolve together with the project's locked ones (it needs
# python-dateutil 2.x), and a dev .venv should not carry an unrelated tool's dependencies.
#
# Usage: hack/install-datacontract-cli.sh   (prints the datacontract executable on the last line)
# Env:   DATAMESH_CACHE  cache folder (default: <repo>/.cache)
#        PYTHON          interpreter the virtualenv is made from (default: python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "$ROOT/hack/lib.sh"

# The one place the version is set; tests/unit/meshctl/test_odcs_datacontract_cli.py reads it.
DATACONTRACT_CLI_VERSION=1.2.8
# `lint` needs the core alone (about 130 MB). Extras such as `postgres`, for running
# `datacontract test` against the warehouse, bring ibis, pandas and pyarrow (about 500 MB in
# all): add them here, comma-separated, once something runs those tests.
# postgres: `datacontract test` against the warehouse (the quality checks' parity test).
DATACONTRACT_CLI_EXTRAS="postgres"
PIP_VERSION=25.3

SPEC="datacontract-cli${DATACONTRACT_CLI_EXTRAS:+[$DATACONTRACT_CLI_EXTRAS]}==${DATACONTRACT_CLI_VERSION}"
VENV_DIR="$CACHE_DIR/datacontract-cli-${DATACONTRACT_CLI_VERSION}"
CLI="$VENV_DIR/bin/datacontract"
# Written last, holding the spec: a half-made or differently made virtualenv is made anew.
MARKER="$VENV_DIR/.installed"

if [[ -x "$CLI" && -f "$MARKER" && "$(cat "$MARKER")" == "$SPEC" ]]; then
  log "datacontract-cli ${DATACONTRACT_CLI_VERSION}: cached at $VENV_DIR"
  echo "$CLI"
  exit 0
fi

python="${PYTHON:-python3}"
command -v "$python" >/dev/null 2>&1 || die "$python is not on PATH; set PYTHON to a Python 3.11+ interpreter."

start=$SECONDS
log "datacontract-cli ${DATACONTRACT_CLI_VERSION}: installing $SPEC into $VENV_DIR"
rm -rf "$VENV_DIR"
mkdir -p "$CACHE_DIR"
"$python" -m venv "$VENV_DIR"
log "datacontract-cli ${DATACONTRACT_CLI_VERSION}: pip ${PIP_VERSION}"
"$VENV_DIR/bin/pip" install --quiet --disable-pip-version-check "pip==${PIP_VERSION}"
log "datacontract-cli ${DATACONTRACT_CLI_VERSION}: resolving and installing (a minute or two)"
if ! "$VENV_DIR/bin/pip" install --quiet --disable-pip-version-check "$SPEC"; then
  rm -rf "$VENV_DIR"
  die "installing $SPEC failed (see pip's messages above)." \
      "Check that the Python package index is reachable, then run this script again."
fi
"$CLI" --version >/dev/null || die "$CLI was installed but does not run."
echo "$SPEC" >"$MARKER"
log "datacontract-cli ${DATACONTRACT_CLI_VERSION}: ready in $((SECONDS - start)) s" \
    "($(du -sh "$VENV_DIR" | cut -f1))"
echo "$CLI"
