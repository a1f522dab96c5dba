#!/usr/bin/env bash
# End-to-end tests of the JupyterLab extension: Galata/Playwright on Debian's Chromium against a
# JupyterLab from the project venv serving a scratch copy of notebooks/.
#
#   labextension/run-ui-tests.sh [playwright args…]     e.g. -g 'YAML'  or  tests/comm.spec.ts
#
# Env: VENV (default <repo>/.venv), CHROMIUM_PATH (default /usr/bin/chromium), POLYNB_UI_PORT (default: a
# free port). Installs what it needs (npm deps from the committed yarn.locks, Chromium through apt when
# root), starts nothing that outlives it, exits non-zero when a test fails. Screenshots and traces go
# to labextension/ui-tests/test-results/.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
export PATH="$VENV/bin:$PATH"
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"

for tool in jupyter jlpm node; do
  command -v "$tool" > /dev/null || { echo "run-ui-tests: '$tool' not found (venv: $VENV)" >&2; exit 1; }
done

if [ ! -x "$CHROMIUM_PATH" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    echo "run-ui-tests: installing Debian's chromium"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null
  fi
  [ -x "$CHROMIUM_PATH" ] || { echo "run-ui-tests: no Chromium at $CHROMIUM_PATH (apt-get install chromium)" >&2; exit 1; }
fi

SCRATCH="$(mktemp -d -t polynb-ui-XXXXXX)"
cleanup() {
  # runs a failed test left behind (a TensorBoard service runs until stopped)
  if [ -d "$SCRATCH/home" ]; then
    POLYNB_HOME="$SCRATCH/home" polynb ls --all --json 2> /dev/null | python -c '
import json, sys
final = {"succeeded", "failed", "upstream_failed", "stopped", "skipped"}
for run in json.load(sys.stdin):
    if run.get("status") not in final and not run.get("dag_uuid"):
        print(run["uuid"])' 2> /dev/null | while read -r uuid; do
      POLYNB_HOME="$SCRATCH/home" polynb stop --grace 2 "$uuid" > /dev/null 2>&1 || true
    done
  fi
  rm -rf "$SCRATCH"
}
trap cleanup EXIT

export CI="${CI:-1}"                       # Playwright: never reuse a server someone else started
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1  # the system Chromium is used
export YARN_ENABLE_IMMUTABLE_INSTALLS=1    # the committed yarn.locks are the truth
export POLYNB_HOME="$SCRATCH/home"
export POLYNB_UI_PORT="${POLYNB_UI_PORT:-$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"

# The extension under test is the current source, built now (seconds when up to date) and put first
# on the labextensions path, so a stale copy installed in the venv cannot shadow it.
echo "run-ui-tests: building the extension"
(cd "$HERE" && jlpm install --immutable > "$SCRATCH/install.log" 2>&1 || { cat "$SCRATCH/install.log"; exit 1; })
(cd "$HERE" && jlpm build > "$SCRATCH/build.log" 2>&1 || { cat "$SCRATCH/build.log"; exit 1; })
mkdir -p "$SCRATCH/jupyter/labextensions/polynb"
cp -r "$REPO/polynb/labextension/." "$SCRATCH/jupyter/labextensions/polynb/"
cp "$HERE/install.json" "$SCRATCH/jupyter/labextensions/polynb/"
export JUPYTER_PATH="$SCRATCH/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
jupyter labextension list 2>&1 | grep -E '^\s+polynb v.*enabled.*OK' \
  || { echo "run-ui-tests: polynb is not an enabled labextension" >&2; jupyter labextension list >&2; exit 1; }

echo "run-ui-tests: installing the test dependencies"
cd "$HERE/ui-tests"
jlpm install --immutable > "$SCRATCH/ui-install.log" 2>&1 || { cat "$SCRATCH/ui-install.log"; exit 1; }

echo "run-ui-tests: playwright on port $POLYNB_UI_PORT"
status=0
jlpm playwright test "$@" > "$SCRATCH/playwright.log" 2>&1 || status=$?
# the test lines and the summary; the server's own log (the kernels' stderr too) only when something failed,
# even if a retry passed: a flaky test's first failure is the one to read
grep -v '^\[WebServer\]' "$SCRATCH/playwright.log" || true
if [ "$status" != 0 ] || grep -qE '^ +[0-9]+ flaky' "$SCRATCH/playwright.log"; then
  echo "---- Jupyter server log (last 200 lines) ----"
  grep '^\[WebServer\]' "$SCRATCH/playwright.log" | tail -n 200 || true
fi
exit "$status"
