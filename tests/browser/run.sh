#!/usr/bin/env bash
# Browser end-to-end test of jeex-api (see README.md): install the pinned npm packages, generate
# the client types from the committed OpenAPI document, type-check and compile the page, run the
# scenarios in headless Chromium. CI: `bash tests/browser/run.sh`. Exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
for tool in node npm psql "${REDIS_SERVER:-redis-server}" setsid; do
  command -v "$tool" >/dev/null || { echo "browser-e2e: $tool not found" >&2; exit 2; }
done
[ -x "$chromium" ] || { echo "browser-e2e: $chromium not found (Debian's chromium package; no browser is downloaded)" >&2; exit 2; }

started=$(date +%s)
# The npm cache stays where npm keeps it (outside the clone); --prefer-offline uses it first.
npm ci --prefer-offline --no-audit --no-fund --loglevel=error
rm -rf build
npx --no-install openapi-typescript ../../api-server/openapi.json -o build/schema.d.ts
npx --no-install tsc -p tsconfig.json
echo "browser-e2e: installed, generated and type-checked in $(( $(date +%s) - started )) s"

# The runner leads its own process group, so whatever it started is ended with it even if it dies.
setsid --wait node runner.mjs &
pid=$!
on_signal() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  kill -KILL -- "-$pid" 2>/dev/null || true
  exit 130
}
trap on_signal INT TERM HUP
rc=0
wait "$pid" || rc=$?
kill -KILL -- "-$pid" 2>/dev/null || true
exit "$rc"
