#!/bin/sh
# test_layers.sh - proves that `make check`'s layer check (scripts/layers.py)
# and banned.h hold: in a scratch copy of src/, include/ and scripts/ it
# plants one violation at a time, each in a file of the layer it breaks, and
# checks that layers.py fails naming that file and line; then it plants a
# call of each banned function in a file of each layer and checks that the
# file no longer compiles. The clean copy passes both. Prints TAP.
#
# usage: tests/check/test_layers.sh 'CC FLAGS'   (the compile command,
#        e.g. "cc -std=c11 ... -Iinclude -Isrc"; make check-test passes it)
cc=${1:?usage: test_layers.sh 'CC FLAGS'}
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$top/src" "$top/include" "$top/scripts" "$tmp/"
cd "$tmp" || exit 1

n=0
fail=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $1"; }

# plant FILE LINE_TEXT DESCRIPTION: inserts LINE_TEXT after the file's
# compat.h include (or first, with "top"), expects layers.py to fail on that
# line, then restores the file.
plant() {
    file=$1 text=$2 what=$3 where=${4:-after}
    line=$(grep -n '^#include "common/compat.h"' "$file" | head -1 | cut -d: -f1)
    if [ "$where" = top ]; then
        sed -i "${line}i $text" "$file"
    else
        sed -i "${line}a $text" "$file"
        line=$((line + 1))
    fi
    out=$(/usr/bin/python3 scripts/layers.py 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && printf '%s\n' "$out" | grep -q "^$file:$line: "; then
        ok "$what: $(printf '%s\n' "$out" | grep "^$file:$line: " | head -1)"
    else
        not_ok "$what (rc $rc): $out"
    fi
    cp "$top/$file" "$file"
}

# replace FILE SED_EXPR DESCRIPTION LINE: edits the file, expects a failure
# on LINE.
replace() {
    file=$1 expr=$2 what=$3 line=$4
    sed -i "$expr" "$file"
    out=$(/usr/bin/python3 scripts/layers.py 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && printf '%s\n' "$out" | grep -q "^$file:$line: "; then
        ok "$what: $(printf '%s\n' "$out" | grep "^$file:$line: " | head -1)"
    else
        not_ok "$what (rc $rc): $out"
    fi
    cp "$top/$file" "$file"
}

out=$(/usr/bin/python3 scripts/layers.py 2>&1)
if [ $? -eq 0 ] && [ -z "$out" ]; then
    ok "the clean tree passes"
else
    not_ok "the clean tree passes: $out"
fi

# The wfo_ prefix on a module's own function or struct (rule 4); common/
# and the public API keep it.
plant src/core/fsm.c 'int wfo_fsm_helper(void) { return 0; }' "wfo_ on a core function"
plant src/store/store.c 'struct wfo_store_thing { int x; };' "wfo_ on a store struct"
plant src/api/routes.c 'static void wfo_route_helper(int x)' "wfo_ on a static api function"

# A layer reaching up or sideways.
plant src/core/fsm.c '#include "../api/api.h"' "core -> api"
plant src/core/round.c '#include "../cli/cli.h"' "core -> cli"
plant src/steps/command.c '#include "../core/exec.h"' "steps -> core internals"
plant src/steps/task.c '#include "../store/store.h"' "steps -> store"
plant src/store/store.c '#include "core/engine_int.h"' "store -> core internals"
plant src/store/chunk.c '#include "../steps/runner.h"' "store -> steps"
plant src/common/buf.c '#include "../core/def.h"' "common -> core"
plant src/common/log.c '#include "wfo/wfo.h"' "common -> the public API beyond its error codes"
plant src/api/executions.c '#include "../store/store.h"' "api -> store"
plant src/api/tasks.c '#include "../core/engine_int.h"' "api -> core internals"
plant src/api/workflows.c '#include "../cli/cli.h"' "api -> cli"
plant src/cli/client.c '#include "../store/store.h"' "cli -> store"
plant src/core/engine.c '#include "store/sqlite/sqlite.h"' "core -> a store back end's own header"

# A foreign library's header outside its adapter.
plant src/core/fsm.c '#include <jq.h>' "libjq outside core/expr.c"
plant src/store/store.c '#include <sqlite3.h>' "SQLite outside store/sqlite/"
plant src/store/sqlite/sqlite.c '#include <libpq-fe.h>' "libpq outside store/postgres/"
plant src/api/routes.c '#include <microhttpd.h>' "libmicrohttpd outside api/http.c"
plant src/steps/http.c '#include <curl/curl.h>' "libcurl outside common/httpc.c"
plant src/common/json.c '#include <libfyaml.h>' "libfyaml outside common/yaml.c"
plant src/core/doc.c '#include <jansson.h>' "jansson outside common/json.h"
plant src/api/routes.c '#include <openssl/hmac.h>' "OpenSSL outside common/crypto.c"
plant src/common/util.c '#include <zlib.h>' "a library with no adapter"

# compat.h first, banned.h only through it.
plant src/common/map.c '#include <stdio.h>' "a system header before compat.h" top
replace src/steps/runner.c '/^#include "common\/compat.h"/d' "no compat.h" 6
plant src/cli/run.c '#include "../common/banned.h"' "banned.h outside compat.h"

# Each banned function, in a file of each layer, fails to compile.
banned() {
    file=$1 call=$2 name=$3
    if ! $cc -fsyntax-only "$file" 2>/dev/null; then
        not_ok "$file compiles before $name is planted"
        return
    fi
    printf '\nvoid planted_%s(char *d, const char *s);\nvoid planted_%s(char *d, const char *s)\n{\n    %s;\n}\n' \
        "$name" "$name" "$call" >>"$file"
    err=$($cc -fsyntax-only "$file" 2>&1)
    if [ $? -ne 0 ] && printf '%s\n' "$err" | grep -q "sorry_${name}_is_a_banned_function"; then
        ok "$name in $file does not compile"
    else
        not_ok "$name in $file does not compile: $err"
    fi
    cp "$top/$file" "$file"
}
banned src/core/fsm.c 'sprintf(d, "%s", s)' sprintf
banned src/api/routes.c 'strcpy(d, s)' strcpy
banned src/store/store.c 'strcat(d, s)' strcat
banned src/steps/command.c '(void)strtok(d, s)' strtok
banned src/cli/main.c '(void)atoi(s)' atoi
banned src/common/duration.c '(void)d; (void)s; char b[8]; sprintf(b, "x")' sprintf

echo "1..$n"
echo "layers: $((n - fail)) passed, $fail failed"
[ $fail -eq 0 ]
