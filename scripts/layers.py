#!/usr/bin/python3
"""
layers.py - checks wfo's layer rules on every #include under src/ and
include/; `make check` runs it. The rules are stated once, in
docs/interfaces/internal.md ("The layer rules"); the tables below are the
same rules for a machine, and the two change together.

  1. every .c under src/ includes "common/compat.h" first (git's
     git-compat-util.h), and nothing but compat.h includes banned.h;
  2. a file includes wfo headers only from the places its layer may see
     (LAYERS); a store back end's own directory (store/sqlite/) is seen only
     from inside it;
  3. a foreign library's header is included only by that library's adapter
     (FOREIGN), and every other <header> is the C library's or the
     system's (SYSTEM): a new library needs a row in FOREIGN first.
  4. the prefix wfo_ names the public API (include/wfo/) and common/, the
     project's own library (STYLE rule 1: wfo_buf_addf); a function or
     struct that core, store, steps, api or cli define carries its
     module's prefix (fsm_, store_, ...) unless include/wfo/ declares it.

Prints "FILE:LINE: message" for each include that breaks a rule and exits
1; prints nothing and exits 0 when none does.

usage: scripts/layers.py [ROOT]    (ROOT: the repository; default: this
                                    script's repository)
"""
import os
import re
import sys

# What each layer may include of wfo: directories (ending in /) and files,
# relative to the repository. Anything of wfo not listed is refused.
COMMON = ["src/common/", "include/wfo/"]
CORE_DOORS = ["src/core/engine.h", "src/core/query.h", "src/core/def.h"]
LAYERS = {
    # the public API: only itself
    "include": ["include/wfo/"],
    # uses nothing of wfo but the error codes it implements (wfo_strerror)
    "common": ["src/common/", "include/wfo/error.h", "include/wfo/errors.def"],
    # the shared types only: no core, no steps
    "store": ["src/store/"] + COMMON,
    "steps": ["src/steps/"] + COMMON,
    # the store through store.h, the runners through runner.h; never api/, cli/
    "core": ["src/core/", "src/store/store.h", "src/steps/runner.h"] + COMMON,
    # core through its doors (reads: query.h); never the store, never cli/
    "api": ["src/api/"] + CORE_DOORS + COMMON,
    # the top: the API's and core's doors, the worker's command protocol
    "cli": ["src/cli/", "src/api/api.h", "src/steps/taskcmd.h"] + CORE_DOORS + COMMON,
}

# Each foreign library's headers (a file, or a directory ending in /) and
# its one adapter (files, or directories ending in /).
FOREIGN = [
    ("jq.h", "libjq", ["src/core/expr.c"]),
    ("jv.h", "libjq", ["src/core/expr.c"]),
    ("sqlite3.h", "SQLite", ["src/store/sqlite/"]),
    ("libpq-fe.h", "libpq", ["src/store/postgres/"]),
    ("microhttpd.h", "libmicrohttpd", ["src/api/http.c"]),
    ("curl/", "libcurl", ["src/common/httpc.c"]),
    ("libfyaml.h", "libfyaml", ["src/common/yaml.c"]),
    ("jansson.h", "jansson", ["src/common/json.h"]),
    ("openssl/", "OpenSSL", ["src/common/crypto.c"]),
]

# The C library (C11), POSIX and the system: headers that need no adapter.
SYSTEM = set(
    """assert.h complex.h ctype.h errno.h fenv.h float.h inttypes.h iso646.h
    limits.h locale.h math.h setjmp.h signal.h stdalign.h stdarg.h stdatomic.h
    stdbool.h stddef.h stdint.h stdio.h stdlib.h stdnoreturn.h string.h
    tgmath.h threads.h time.h uchar.h wchar.h wctype.h
    dirent.h dlfcn.h fcntl.h fnmatch.h ftw.h glob.h grp.h libgen.h netdb.h
    poll.h pthread.h pwd.h regex.h sched.h semaphore.h spawn.h strings.h
    syslog.h termios.h ucontext.h unistd.h""".split()
)
SYSTEM_DIRS = ("sys/", "netinet/", "arpa/", "linux/", "sanitizer/")

COMPAT = "src/common/compat.h"
BANNED = "src/common/banned.h"

INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^>"]+)[>"]', re.M)


def strip_comments(text):
    """The text with comments blanked (newlines kept, so lines still count)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def layer_of(rel):
    parts = rel.split("/")
    if parts[0] == "include":
        return "include"
    if parts[0] == "src" and len(parts) > 2:
        return parts[1]
    return None


def under(rel, places):
    return any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in places)


def resolve(root, rel, name):
    """The repository path a quoted include names, or None when it is not
    one of wfo's files (searched as the compiler does: the file's own
    directory, then -Iinclude, then -Isrc)."""
    for base in (os.path.dirname(rel), "include", "src"):
        path = os.path.normpath(os.path.join(base, name))
        if not path.startswith("..") and os.path.isfile(os.path.join(root, path)):
            return path
    return None


def foreign_row(name):
    for header, lib, adapter in FOREIGN:
        if name == header or (header.endswith("/") and name.startswith(header)):
            return header, lib, adapter
    return None


def check_file(root, rel, problems):
    with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
        text = strip_comments(f.read())
    layer = layer_of(rel)
    first = True
    for m in INCLUDE_RE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        delim, name = m.group(1), m.group(2).strip()
        where = "%s:%d: " % (rel, line)
        target = resolve(root, rel, name) if delim == '"' else None
        if first and rel.endswith(".c") and target != COMPAT:
            problems.append(where + 'the first #include must be "common/compat.h" '
                            "(it ends with banned.h)")
        first = False
        if target is None:
            row = foreign_row(name)
            if row:
                header, lib, adapter = row
                if not under(rel, adapter):
                    problems.append(where + "<%s> (%s) is included only by its adapter, %s"
                                    % (name, lib, ", ".join(adapter)))
            elif name not in SYSTEM and not name.startswith(SYSTEM_DIRS):
                problems.append(where + "<%s> is neither wfo's nor a system header: a "
                                "foreign library needs its row (and one adapter) in "
                                "scripts/layers.py FOREIGN" % name)
            continue
        if target == BANNED and rel != COMPAT:
            problems.append(where + "banned.h is included only by common/compat.h, "
                            "which every .c includes first")
        back_end = re.match(r"src/store/[^/]+/", target)
        if back_end and not rel.startswith(back_end.group(0)):
            problems.append(where + "%s is private to the %s back end"
                            % (target, back_end.group(0)))
            continue
        allowed = LAYERS.get(layer)
        if allowed is not None and not under(target, allowed):
            problems.append(where + "%s may not include %s (%s sees %s)"
                            % (layer, target, layer, ", ".join(allowed)))
    if first and rel.endswith(".c"):
        problems.append('%s:1: the first #include must be "common/compat.h"' % rel)


# A function defined at the start of a line, or a struct with a body.
# (A line that ends in ";" without a "{" is a prototype or a call.)
DEFINED = re.compile(r"^(?:[A-Za-z_][\w \t\*]*?[\s\*])?(wfo_\w+)\s*\((?:.*\{.*|[^;\n]*)$"
                     r"|^struct (wfo_\w+)\s*\{", re.M)


def check_prefix(root, rel, public, problems):
    if rel.startswith(("src/common/", "include/")) or not rel.startswith("src/"):
        return
    with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
        text = strip_comments(f.read())
    for m in DEFINED.finditer(text):
        name = m.group(1) or m.group(2)
        if name not in public:
            line = text.count("\n", 0, m.start()) + 1
            problems.append("%s:%d: %s: wfo_ is the public prefix (include/wfo/) and common/'s;"
                            " a module's own names carry its prefix" % (rel, line, name))


def public_names(root):
    names = set()
    for d, _, files in os.walk(os.path.join(root, "include")):
        for name in files:
            with open(os.path.join(d, name), encoding="utf-8", errors="replace") as f:
                names.update(re.findall(r"\bwfo_\w+", f.read()))
    return names


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, ".."))
    files = []
    for top in ("src", "include"):
        for d, _, names in os.walk(os.path.join(root, top)):
            for name in names:
                if name.endswith((".c", ".h", ".def")):
                    files.append(os.path.relpath(os.path.join(d, name), root))
    problems = []
    public = public_names(root)
    for rel in sorted(files):
        check_file(root, rel, problems)
        check_prefix(root, rel, public, problems)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
