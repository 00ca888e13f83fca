#!/bin/sh
# deps.sh - installs the Debian packages wfo needs to build and test, only
# those missing, and (for the tests) playwright-core from npm into
# tests/browser/node_modules (git-ignored). Idempotent; apt-get and npm run
# only when something is missing.
# Usage: scripts/deps.sh [build|test]   (test adds what the tests need)
set -eu

build="gcc make pkg-config libjansson-dev libfyaml-dev libjq-dev libonig-dev
libsqlite3-dev libcurl4-openssl-dev libmicrohttpd-dev libpq-dev libssl-dev libjemalloc-dev"
test="python3 python3-pytest python3-pytest-xdist python3-requests python3-jsonschema postgresql sqlite3 clang
libclang-rt-14-dev chromium"
# The browser tests (tests/browser/) drive Debian's chromium with this
# playwright-core (no browser download); 1.56 declares node >= 18, so it
# runs on Debian 12's nodejs (1.65 wants node 20).
playwright_version=1.56.1

want=$build
[ "${1:-build}" = test ] && want="$build $test"

missing=
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
# node and npm: Debian's packages, unless a node with npm is installed already
if [ "${1:-build}" = test ] && ! command -v npm >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi

if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
if [ -n "$missing" ]; then
    echo "deps.sh: installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq || true
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ "${1:-build}" = test ]; then
    dir=$(dirname "$0")/../tests/browser
    if ! grep -qs "\"version\": \"$playwright_version\"" \
        "$dir/node_modules/playwright-core/package.json"; then
        echo "deps.sh: npm install playwright-core@$playwright_version" >&2
        (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-save --no-audit \
            --no-fund --silent "playwright-core@$playwright_version" >/dev/null)
    fi
fi
