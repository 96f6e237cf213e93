# mk/hardening.mk: fuzzing, sanitizer builds, valgrind and lint.
#
# Included by the Makefile (`-include mk/hardening.mk`), whose variables it
# uses (CORE_SRC, HEADERS, WARN, MOD_CFLAGS, APXS, PY_INCLUDES...).
# Everything it builds goes under build/ (never into mod_pyprof/ or pyext/,
# so it cannot clash with `make all`).  See docs/HARDENING.md.
#
#   make fuzz [FUZZ_SECONDS=30] [FUZZ_TARGETS="parse escape"]
#                         build the libFuzzer targets and run each for
#                         FUZZ_SECONDS, new inputs into build/fuzz/corpus/
#   make fuzz-regress     run every target once over the committed seeds
#   make fuzz-msan        the same targets under MemorySanitizer
#   make stress-tsan      concurrent rendering under ThreadSanitizer
#   make stress-asan      the same under AddressSanitizer
#   make asan             module + pyext with ASan + UBSan in build/asan/
#   make check-asan       the integration suite against that build
#   make check-valgrind   the cmocka suite under valgrind memcheck
#   make fuzz-http        tests/fuzz/fuzz-http.py against a real httpd
#   make fuzz-http-asan   the same against the ASan build, embedded mode
#                         then daemon mode (FUZZ_HTTP_SECONDS each)
#   make lint             include cycles (scripts/include-cycles.py), then
#                         cppcheck + clang-tidy (scripts/lint.sh)
#   make hardening        what CI runs after `make test`: lint, the fuzz
#                         seeds, every fuzz target for HARDENING_FUZZ_SECONDS,
#                         concurrent rendering under TSan, the unit tests
#                         under valgrind, the integration suite under ASan,
#                         hostile HTTP against the ASan build

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?= parse escape render export linetable
FUZZ_FLAGS   ?=
FUZZ_NICE    ?= 10
FUZZ_CFLAGS  := -std=gnu11 -g -O1 -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined \
                $(WARN) -Imod_pyprof -Itests/support -Itests/fuzz
FUZZ_BINS    := $(patsubst %,build/fuzz/fuzz_%,$(FUZZ_TARGETS))
# UBSan findings are fatal (halt_on_error) except the known ones listed,
# with their fix, in tests/fuzz/ubsan.supp
FUZZ_ENV     := UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$(CURDIR)/tests/fuzz/ubsan.supp \
                ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
# per target: longest input (the store targets need room for 1 KB names)
FUZZ_MAXLEN_parse  := 512
FUZZ_MAXLEN_escape := 4096
FUZZ_MAXLEN_render := 16384
FUZZ_MAXLEN_export := 16384

# ASan + UBSan build of the module (gcc through apxs/libtool) and pyext
ASAN_CC      ?= gcc
# UBSan stays recoverable: every report is logged (UBSAN_OPTIONS log_path)
# and the run goes on, so one finding does not hide the next
ASAN_FLAGS   := -fsanitize=address,undefined -fno-omit-frame-pointer
ASAN_DIR     := build/asan
ASAN_MODULE  := $(ASAN_DIR)/mod_pyprof/.libs/mod_pyprof.so
ASAN_PYEXT   := $(ASAN_DIR)/pyext/pyprof/_pyprof$(PY_EXT_SUFFIX)

.PHONY: fuzz fuzz-build fuzz-regress fuzz-msan stress-tsan stress-asan \
        asan check-asan check-valgrind fuzz-http fuzz-http-asan lint hardening

# ---- libFuzzer ----

# The oracles are compiled without coverage instrumentation: the fuzzer
# must chase new paths in mod_pyprof's code, not in the checks.
build/fuzz/fuzz_check.o: tests/fuzz/fuzz_check.c tests/fuzz/fuzz_check.h \
                         $(HEADERS)
	@mkdir -p build/fuzz
	$(FUZZ_CC) -std=gnu11 -g -O2 -fno-omit-frame-pointer \
	    -fsanitize=address,undefined $(WARN) -Imod_pyprof -Itests/support -Itests/fuzz \
	    -c -o $@ $<

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c build/fuzz/fuzz_check.o \
                   tests/fuzz/fuzz_check.h tests/fuzz/fuzz_store.h \
                   $(TEST_CORE_SRC) $(HEADERS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< build/fuzz/fuzz_check.o \
	    $(TEST_CORE_SRC) -lz -lm

fuzz-build: $(FUZZ_BINS)

# Each target runs FUZZ_SECONDS; new inputs go to build/fuzz/corpus/T (the
# committed seeds in tests/fuzz/corpus/T are read, never written), crashes
# to build/fuzz/artifacts/.  Exits non-zero on the first finding.
fuzz: $(FUZZ_BINS)
	@mkdir -p build/fuzz/artifacts
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p build/fuzz/corpus/$$t; \
	    echo "== fuzz_$$t for $(FUZZ_SECONDS)s"; \
	    dict=; [ -f tests/fuzz/$$t.dict ] && dict=-dict=tests/fuzz/$$t.dict; \
	    maxlen=4096; case $$t in parse) maxlen=$(FUZZ_MAXLEN_parse);; \
	        escape) maxlen=$(FUZZ_MAXLEN_escape);; \
	        render) maxlen=$(FUZZ_MAXLEN_render);; \
	        export) maxlen=$(FUZZ_MAXLEN_export);; esac; \
	    $(FUZZ_ENV) nice -n $(FUZZ_NICE) build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	        -max_len=$$maxlen -timeout=20 -rss_limit_mb=2048 \
	        -print_final_stats=1 $$dict \
	        -artifact_prefix=build/fuzz/artifacts/$$t- $(FUZZ_FLAGS) \
	        build/fuzz/corpus/$$t tests/fuzz/corpus/$$t \
	        >build/fuzz/$$t.log 2>&1; rc=$$?; \
	    grep -E '^Done|^stat::(number_of_executed_units|peak_rss_mb)' \
	        build/fuzz/$$t.log; \
	    grep -E '^#[0-9]+' build/fuzz/$$t.log | tail -n 1; \
	    if [ $$rc -ne 0 ]; then \
	        echo "fuzz_$$t FOUND SOMETHING (rc $$rc): build/fuzz/$$t.log"; \
	        grep -E -A3 'FUZZ CHECK FAILED|ERROR: (AddressSanitizer|libFuzzer)|runtime error' \
	            build/fuzz/$$t.log | head -20; \
	        exit 1; \
	    fi; \
	done

# Replay the committed seeds once (seconds; no mutation): a regression test
# for every input that ever found something.
fuzz-regress: $(FUZZ_BINS)
	@mkdir -p build/fuzz/artifacts
	@for t in $(FUZZ_TARGETS); do \
	    echo "== fuzz_$$t over tests/fuzz/corpus/$$t"; \
	    $(FUZZ_ENV) build/fuzz/fuzz_$$t -runs=0 \
	        -artifact_prefix=build/fuzz/artifacts/$$t- tests/fuzz/corpus/$$t \
	        || exit 1; \
	done

# ---- MemorySanitizer variant (uninitialised reads ASan cannot see) ----
#
# Same targets built with -fsanitize=memory; export is left out (zlib is
# not instrumented, so every deflate output would look uninitialised).
# `make fuzz-msan` replays the committed seeds, then fuzzes FUZZ_SECONDS.

FUZZ_MSAN_TARGETS ?= parse escape render linetable
FUZZ_MSAN_CFLAGS  := -std=gnu11 -g -O1 -fno-omit-frame-pointer \
                     -fsanitize=memory -fsanitize-memory-track-origins \
                     -fsanitize-ignorelist=tests/fuzz/msan.ignorelist \
                     $(WARN) -Imod_pyprof -Itests/support -Itests/fuzz

build/fuzz-msan/fuzz_check.o: tests/fuzz/fuzz_check.c tests/fuzz/fuzz_check.h \
                              $(HEADERS)
	@mkdir -p build/fuzz-msan
	$(FUZZ_CC) $(FUZZ_MSAN_CFLAGS) -c -o $@ $<

build/fuzz-msan/fuzz_%: tests/fuzz/fuzz_%.c build/fuzz-msan/fuzz_check.o \
                        tests/fuzz/fuzz_check.h tests/fuzz/fuzz_store.h \
                        tests/fuzz/msan.ignorelist $(TEST_CORE_SRC) $(HEADERS)
	$(FUZZ_CC) $(FUZZ_MSAN_CFLAGS) -fsanitize=fuzzer -o $@ $< \
	    build/fuzz-msan/fuzz_check.o $(TEST_CORE_SRC) -lz -lm

fuzz-msan: $(patsubst %,build/fuzz-msan/fuzz_%,$(FUZZ_MSAN_TARGETS))
	@mkdir -p build/fuzz-msan/artifacts
	@for t in $(FUZZ_MSAN_TARGETS); do \
	    mkdir -p build/fuzz-msan/corpus/$$t; \
	    echo "== msan fuzz_$$t for $(FUZZ_SECONDS)s"; \
	    nice -n $(FUZZ_NICE) build/fuzz-msan/fuzz_$$t \
	        -max_total_time=$(FUZZ_SECONDS) -max_len=16384 -timeout=20 \
	        -rss_limit_mb=2048 -print_final_stats=1 \
	        -artifact_prefix=build/fuzz-msan/artifacts/$$t- \
	        build/fuzz-msan/corpus/$$t tests/fuzz/corpus/$$t \
	        >build/fuzz-msan/$$t.log 2>&1; rc=$$?; \
	    grep -E '^Done' build/fuzz-msan/$$t.log; \
	    if [ $$rc -ne 0 ]; then \
	        echo "msan fuzz_$$t FOUND SOMETHING (rc $$rc): build/fuzz-msan/$$t.log"; \
	        grep -E -A4 'FUZZ CHECK FAILED|MemorySanitizer' \
	            build/fuzz-msan/$$t.log | head -24; \
	        exit 1; \
	    fi; \
	done

# ---- concurrent rendering (threaded MPMs) ----
#
# stress_render: THREADS handler threads render every page of one store at
# once.  TSan reports shared state in the renderers; ASan turns the same
# races into crashes.

STRESS_THREADS ?= 4
STRESS_ROUNDS  ?= 200
STRESS_SRC     := tests/fuzz/stress_render.c tests/fuzz/fuzz_check.c

build/stress/stress_render_%: $(STRESS_SRC) tests/fuzz/fuzz_check.h \
                              tests/fuzz/fuzz_store.h $(TEST_CORE_SRC) $(HEADERS)
	@mkdir -p build/stress
	$(FUZZ_CC) -std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize=$* \
	    $(WARN) -Imod_pyprof -Itests/support -Itests/fuzz -o $@ $(STRESS_SRC) $(TEST_CORE_SRC) \
	    -lz -lm -lpthread

stress-tsan: build/stress/stress_render_thread
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	    build/stress/stress_render_thread -t $(STRESS_THREADS) \
	    -n $(STRESS_ROUNDS) tests/fuzz/corpus/render/*

stress-asan: build/stress/stress_render_address
	build/stress/stress_render_address -t $(STRESS_THREADS) \
	    -n $(STRESS_ROUNDS) tests/fuzz/corpus/render/*

# ---- ASan + UBSan build (module through apxs, pyext) ----
#
# apxs passes -Wc,FLAG to the compiler and -Wl,FLAG to libtool's link; the
# sources are copied to build/asan/ so the objects never mix with `make
# all`'s.  httpd itself is not instrumented: the runtime must be
# LD_PRELOADed into it (tests/asan-integration.sh does that).

$(ASAN_MODULE): $(GLUE_SRC) $(CORE_SRC) $(SAMPLER_SRC) $(HEADERS) \
                mk/hardening.mk
	@rm -rf $(ASAN_DIR)/mod_pyprof && mkdir -p $(ASAN_DIR)/mod_pyprof
	cp mod_pyprof/*.c mod_pyprof/*.h $(ASAN_DIR)/mod_pyprof/
	cd $(ASAN_DIR)/mod_pyprof && $(APXS) -S CC=$(ASAN_CC) -c \
	    -o mod_pyprof.la \
	    $(foreach f,$(MOD_CFLAGS) -O1 $(ASAN_FLAGS),-Wc,$(f)) \
	    $(foreach f,$(ASAN_FLAGS),-Wl,$(f)) -Wl,-l$(PY_LIB) -lz \
	    $(notdir $(GLUE_SRC) $(CORE_SRC) $(SAMPLER_SRC)) >build.log 2>&1 \
	    || { cat build.log; exit 1; }
	@grep -E 'warning:|error:' $(ASAN_DIR)/mod_pyprof/build.log || true
	@objdump -p $@ | grep -q 'NEEDED.*libasan' \
	    || { echo "$@ is not linked against libasan"; exit 1; }

$(ASAN_PYEXT): pyext/_pyprof.c pyext/pyprof/__init__.py mod_pyprof/pp_api.h \
               mk/hardening.mk
	@mkdir -p $(ASAN_DIR)/pyext/pyprof
	cp pyext/pyprof/__init__.py $(ASAN_DIR)/pyext/pyprof/
	$(ASAN_CC) -std=gnu11 -O1 -g $(WARN) $(ASAN_FLAGS) -fPIC -shared \
	    $(PY_INCLUDES) -Imod_pyprof -o $@ pyext/_pyprof.c

asan: $(ASAN_MODULE) $(ASAN_PYEXT)

check-asan: asan $(PYEXT)
	bash tests/asan-integration.sh

# ---- valgrind ----

check-valgrind: $(UNIT_TESTS)
	bash tests/unit/valgrind-unit.sh

# ---- HTTP fuzzing against a real httpd ----

FUZZ_HTTP_SECONDS ?= 60
FUZZ_HTTP_MPM ?= event
fuzz-http: $(MODULE)
	$(TEST_PYTHON) tests/fuzz/fuzz-http.py --seconds $(FUZZ_HTTP_SECONDS) --mpm $(FUZZ_HTTP_MPM)

fuzz-http-asan: asan
	ASAN_SKIP_BUILD=1 bash tests/asan-integration.sh --run $(TEST_PYTHON) \
	    tests/fuzz/fuzz-http.py --seconds $(FUZZ_HTTP_SECONDS) --mpm $(FUZZ_HTTP_MPM) \
	    --out build/asan/fuzz-http
	ASAN_SKIP_BUILD=1 bash tests/asan-integration.sh --run $(TEST_PYTHON) \
	    tests/fuzz/fuzz-http.py --seconds $(FUZZ_HTTP_SECONDS) --mpm $(FUZZ_HTTP_MPM) \
	    --daemon --out build/asan/fuzz-http-daemon

# ---- static analysis ----

# include cycles between units first (a second), then cppcheck and clang-tidy
lint:
	$(TEST_PYTHON) scripts/include-cycles.py
	bash scripts/lint.sh

# ---- all of it, bounded (CI: .ci/run) ----
#
# Each step runs even if an earlier one failed, so one CI run shows every
# finding; the target fails if any did.
HARDENING_FUZZ_SECONDS ?= 30
HARDENING_FUZZ_HTTP_SECONDS ?= 30
HARDENING_STEPS := format-check lint fuzz-regress fuzz stress-tsan check-valgrind check-asan \
                   fuzz-http-asan

hardening: deps
	@failed=; for step in $(HARDENING_STEPS); do \
	    echo "==== make $$step"; started=$$(date +%s); \
	    if $(MAKE) --no-print-directory $$step \
	        FUZZ_SECONDS=$(HARDENING_FUZZ_SECONDS) \
	        FUZZ_HTTP_SECONDS=$(HARDENING_FUZZ_HTTP_SECONDS); then \
	        echo "==== make $$step: passed in $$(( $$(date +%s) - started ))s"; \
	    else \
	        echo "==== make $$step: FAILED after $$(( $$(date +%s) - started ))s"; \
	        failed="$$failed $$step"; \
	    fi; \
	done; \
	if [ -n "$$failed" ]; then echo "hardening: failed:$$failed"; exit 1; fi; \
	echo "hardening: all of $(HARDENING_STEPS) passed"
