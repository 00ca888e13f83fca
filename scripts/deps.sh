#!/bin/sh
# deps.sh - installs the Debian packages wfo needs to build and test, only
# those missing. Idempotent; apt-get runs only when something is missing.
# Usage: scripts/deps.sh [build|test]   (test adds what the tests need)
set -eu

build="gcc make pkg-config libjansson-dev libfyaml-dev libjq-dev libonig-dev
libsqlite3-dev libcurl4-openssl-dev libmicrohttpd-dev libpq-dev libssl-dev"
test="python3 python3-pytest python3-requests postgresql sqlite3 clang libclang-rt-14-dev"

want=$build
[ "${1:-build}" = test ] && want="$build $test"

missing=
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps.sh: installing:$missing" >&2
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
