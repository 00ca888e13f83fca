# wfo - durable workflow orchestrator.
#   make          installs missing Debian packages, builds build/wfo
#   make run      builds and runs examples/basic_workflow.yaml
#   make test     the layer check on planted violations, unit tests (ASan+UBSan, invariant
#                 checks on), the store suite, black-box (SQLite and PostgreSQL), docs and
#                 browser tests, a short fuzz; two stages at a time (tests/stages.sh, logs in build/test/)
#   make check-test  the layer check and banned.h, each broken once in a scratch copy (tests/check/)
#   make store-test  the store contract suite, once per store back end (tests/store/;
#                 PostgreSQL on a throwaway server, tests/pg/pg.sh)
#   make blackbox-pg  the black-box suite with every server on PostgreSQL
#   make browser-test  the web page in headless Chromium (screenshots in build/browser/)
#   make check    clang-format in check mode and the layer rules (scripts/layers.py;
#                 docs/interfaces/internal.md, "The layer rules")
#   make bench    optimized build and benchmark (BENCH_DB=postgres: on PostgreSQL;
#                 BENCH_NODES=K: the http scenario on K servers sharing the store)

CC ?= cc
PKGS := jansson libfyaml sqlite3 libcurl libmicrohttpd libpq openssl
WARN := -std=c11 -Wall -Wextra -Werror -Wvla -Wstrict-prototypes -Wformat-security \
        -Wno-unused-parameter -Wshadow=local
DEFS := -D_GNU_SOURCE
INC := -Iinclude -Isrc
LIBS = $(shell pkg-config --libs $(PKGS)) -ljq -lonig -lpthread -lm
# The release build's allocator: jemalloc, as Redis ships with. A round of
# the engine allocates and frees thousands of small blocks from several
# threads; with glibc's malloc they were a fifth of the engine thread
# (callgrind), and `bench engine` measured jemalloc at 10% less CPU and 10%
# more workflows/s (docs/operations/scaling.md). Not in the ASan build,
# whose allocator is ASan's.
MALLOC_LIBS := -ljemalloc

SRC := $(sort $(wildcard src/common/*.c src/core/*.c src/steps/*.c src/store/*.c \
        src/store/*/*.c src/api/*.c))
CLI_SRC := $(sort $(wildcard src/cli/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/*/test_*.c))
HDR := $(wildcard include/wfo/*.h include/wfo/*.def src/*/*.h src/*/*/*.h)

# Release build: build/; sanitizer build for tests: build/asan/.
OPT_CFLAGS := -O2 -g
ASAN_CFLAGS := -DWFO_CHECKS -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined

# Leaks inside third-party libraries that wfo cannot free (tests/lsan.supp).
export LSAN_OPTIONS = suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0

.PHONY: all deps test-deps run test unit store-test blackbox blackbox-pg docs-test browser-test fuzz fuzz-test check format \
        check-test bench clean
all: deps build/wfo

deps:
	@scripts/deps.sh build
test-deps:
	@scripts/deps.sh test

CFLAGS_PKG = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)

# Header dependencies: the compiler writes each object's headers to its .d
# file (-MMD; -MP adds an empty rule per header, so a deleted header does not
# stop the build), and the .d files are included below. An object without
# its .d file (a build from before, or a deleted .d) is built again.
DEPFLAGS = -MMD -MP
build/obj/%.o: %.c build/obj/%.d | deps
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(DEFS) $(INC) $(OPT_CFLAGS) $(CFLAGS_PKG) $(CFLAGS) $(DEPFLAGS) -c $< -o $@
build/asan/obj/%.o: %.c build/asan/obj/%.d | deps
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(DEFS) $(INC) $(ASAN_CFLAGS) $(CFLAGS_PKG) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

# The web page is embedded in the binary as a C string. ops.o names it
# here too, so that a build without ops.d makes the header first.
src/api/www/index.html.h: src/api/www/index.html scripts/embed.sh
	scripts/embed.sh index_html $< > $@
build/obj/src/api/ops.o build/asan/obj/src/api/ops.o build/fuzz/obj/src/api/ops.o: \
    src/api/www/index.html.h

build/libwfo.a: $(SRC:%.c=build/obj/%.o)
	@rm -f $@; ar rcs $@ $^
build/asan/libwfo.a: $(SRC:%.c=build/asan/obj/%.o)
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^

build/wfo: $(CLI_SRC:%.c=build/obj/%.o) build/libwfo.a
	$(CC) $(OPT_CFLAGS) -o $@ $^ $(LIBS) $(MALLOC_LIBS)
build/asan/wfo: $(CLI_SRC:%.c=build/asan/obj/%.o) build/asan/libwfo.a
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LIBS)

# A test of a cli/ file links that file too (cli/ is not in libwfo.a).
build/asan/tests/cli/test_%: build/asan/obj/tests/unit/cli/test_%.o build/asan/obj/src/cli/%.o \
    build/asan/libwfo.a
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LIBS)
build/asan/tests/%: build/asan/obj/tests/unit/%.o build/asan/libwfo.a
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LIBS)

UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%)

# The store contract suite (tests/store/suite.h): each program runs every
# check once per back end.
STORE_TEST_SRC := tests/store/test_contract.c tests/store/test_shards.c
STORE_TEST_BIN := $(STORE_TEST_SRC:tests/store/%.c=build/asan/store-tests/%)
# Keep the test objects the chained rules make (not .SECONDARY: for all,
# which would make the .d files intermediate too, and a missing one ignored).
.SECONDARY: $(UNIT_SRC:%.c=build/asan/obj/%.o) $(STORE_TEST_SRC:%.c=build/asan/obj/%.o)

build/asan/store-tests/%: build/asan/obj/tests/store/%.o build/asan/libwfo.a
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LIBS)

run: all
	build/wfo run examples/basic_workflow.yaml --handler audit=cat \
	    --input '{"name": "world", "items": [1, 2, 3]}'

unit: deps $(UNIT_BIN)
	@tests/unit/run.sh $(UNIT_BIN)

# The postgres back end runs against a throwaway server (tests/pg/pg.sh) in
# build/pg/NAME, started and stopped around the stage.
store-test: test-deps $(STORE_TEST_BIN)
	@tests/pg/pg.sh run build/pg/store-test tests/unit/run.sh $(STORE_TEST_BIN)

# Black-box tests mostly wait on processes: BLACKBOX_JOBS pytest-xdist
# workers (0: one process, in order).
BLACKBOX_JOBS ?= 3
blackbox: test-deps build/wfo build/asan/wfo
	cd tests/blackbox && WFO_BIN=$(CURDIR)/build/asan/wfo /usr/bin/python3 -m pytest -q -x \
	    -p no:cacheprovider -n $(BLACKBOX_JOBS) $(PYTEST_ARGS)

# The same black-box suite with every server on PostgreSQL: a database of
# its own per server (tests/blackbox/apiutil.py) in a throwaway cluster.
blackbox-pg: test-deps build/wfo build/asan/wfo
	@tests/pg/pg.sh run build/pg/blackbox sh -c 'cd tests/blackbox && WFO_TEST_DB=postgres \
	    WFO_BIN=$(CURDIR)/build/asan/wfo /usr/bin/python3 -m pytest -q -p no:cacheprovider \
	    -n $(BLACKBOX_JOBS) $(PYTEST_ARGS)'

docs-test: test-deps build/asan/wfo
	cd tests/docs && WFO_BIN=$(CURDIR)/build/asan/wfo /usr/bin/python3 -m pytest -q \
	    -p no:cacheprovider

# The web page in headless Chromium (Debian's) driven by playwright-core
# (scripts/deps.sh test installs both): screenshots in build/browser/.
browser-test: test-deps build/asan/wfo
	WFO_BIN=$(CURDIR)/build/asan/wfo SHOTS_DIR=$(CURDIR)/build/browser \
	    timeout 300 node tests/browser/webpage.test.mjs

# make test: every binary first (one make, a job per core), then the stages
# side by side (tests/stages.sh; their logs in build/test/). First the unit
# tests and the store suite, one per core: CPU-bound, and some unit tests
# race the 1 s expression time limit. Then the black-box tests (which
# mostly wait on processes) in one lane, the docs and browser tests, the
# black-box tests again on PostgreSQL, and the fuzz tests one after another
# in the other.
test: test-deps all
	@$(MAKE) --no-print-directory -j$$(nproc) build/asan/wfo $(UNIT_BIN) $(STORE_TEST_BIN) \
	    $(FUZZ_BINS)
	@MAKE="$(MAKE)" tests/stages.sh check-test unit store-test -- blackbox \
	    "docs-test browser-test blackbox-pg fuzz-test"

# Fuzzing: make fuzz [FUZZ_TIME=300] runs every target FUZZ_TIME seconds;
# make test runs each FUZZ_TEST_EACH (60) seconds, FUZZ_JOBS (2) at a time
# (scripts/fuzz.sh). clang compiles every library source again with
# -fsanitize=fuzzer-no-link so coverage reaches them (tests/fuzz/README.md).
FUZZ_CC := clang
FUZZ_CFLAGS := -std=c11 -Wall -Wextra -Werror -Wvla -Wstrict-prototypes -Wformat-security \
               -Wno-unused-parameter -D_GNU_SOURCE -Iinclude -Isrc -g -O1 \
               -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
FUZZ_TIME ?= 300
FUZZ_TEST_EACH ?= 60
FUZZ_JOBS ?= 2
FUZZ_TARGETS := request definition template time taskcmd chunk
FUZZ_BINS := $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)

build/fuzz/obj/%.o: %.c build/fuzz/obj/%.d | deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(CFLAGS_PKG) $(DEPFLAGS) -c $< -o $@

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(SRC:%.c=build/fuzz/obj/%.o)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(CFLAGS_PKG) -o $@ $^ $(LIBS)

fuzz: test-deps $(FUZZ_BINS)
	@scripts/fuzz.sh -j $(FUZZ_JOBS) $(FUZZ_TIME) $(FUZZ_TARGETS)

fuzz-test: test-deps $(FUZZ_BINS)
	@scripts/fuzz.sh -j $(FUZZ_JOBS) $(FUZZ_TEST_EACH) $(FUZZ_TARGETS)

# Benchmarks: an optimized build, figures as JSON lines (also in build/bench.json).
BENCH_N ?= 20000
BENCH_SCENARIOS ?= latency engine http idle list events
build/bench: bench/bench.c build/libwfo.a build/wfo
	$(CC) $(WARN) $(DEFS) $(INC) $(OPT_CFLAGS) $(CFLAGS_PKG) -o $@ bench/bench.c build/libwfo.a $(LIBS) \
	    $(MALLOC_LIBS)
# BENCH_DB=postgres: every store a database of the server BENCH_PG names, or
# else of a throwaway one (tests/pg/pg.sh, in build/pg/bench) with
# PostgreSQL's durable defaults (fsync, synchronous_commit on).
BENCH_DB ?= sqlite
bench: all build/bench
	@echo "# $$(nproc) cores, load $$(cut -d' ' -f1-3 /proc/loadavg), store $(BENCH_DB), nodes $${BENCH_NODES:-1}"
	@if [ "$(BENCH_DB)" = postgres ] && [ -z "$$BENCH_PG" ]; then \
	    BENCH_DB=postgres PG_DURABLE=1 tests/pg/pg.sh run build/pg/bench build/bench $(BENCH_SCENARIOS) \
	        --n $(BENCH_N); \
	else \
	    BENCH_DB=$(BENCH_DB) build/bench $(BENCH_SCENARIOS) --n $(BENCH_N); \
	fi

# The headers each object was built with (see DEPFLAGS). The .d files are
# named as targets (not intermediate), so a missing one rebuilds its object.
DEPFILES := $(foreach d,build/obj build/asan/obj build/fuzz/obj,\
    $(patsubst %.c,$(d)/%.d,$(SRC) $(CLI_SRC) $(UNIT_SRC) $(STORE_TEST_SRC)))
$(DEPFILES): ;
-include $(wildcard $(DEPFILES))

FORMATTED := $(CLI_SRC) $(SRC) $(UNIT_SRC) $(STORE_TEST_SRC) tests/store/*.h $(filter-out src/api/www/%,$(filter %.h,$(HDR)))
check:
	clang-format --dry-run -Werror $(FORMATTED)
	/usr/bin/python3 scripts/layers.py

# make check's layer check and banned.h, each rule broken once in a scratch
# copy of the tree (tests/check/test_layers.sh).
check-test: deps
	@tests/check/test_layers.sh "$(CC) $(WARN) $(DEFS) $(INC) $(CFLAGS_PKG)"
format:
	clang-format -i $(FORMATTED)

clean:
	rm -rf build
