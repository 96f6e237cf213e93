# mod_pyprof: make | make test | make demo | make install | make clean
#
# Built with apxs against the Python that mod_wsgi links (Debian's 3.11),
# never the python3 that happens to be first on PATH.

APXS        ?= apxs
WSGI_DIR    := /usr/lib/apache2/modules
# The Python the installed mod_wsgi links (Debian: libpython3.X), unless
# PYTHON= names another installed one (sid: PYTHON=/usr/bin/python3.15 for
# its mod_wsgi.so-3.15).  Before mod_wsgi is installed (`make deps` does
# that): the system's python3.
WSGI_PYVER  := $(shell ldd $(WSGI_DIR)/mod_wsgi.so 2>/dev/null | \
                 sed -n 's/.*libpython\([0-9]*\.[0-9]*\).*/\1/p' | head -n1)
PYTHON      ?= $(if $(WSGI_PYVER),/usr/bin/python$(WSGI_PYVER),/usr/bin/python3)
PYCONFIG    ?= $(PYTHON)-config
PY_VER      := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
PY_INCLUDES := $(shell $(PYCONFIG) --includes 2>/dev/null)
PY_LIB      := python$(PY_VER)
PY_SUPPORTED := 3.11 3.13 3.14 3.15
# the runtime half of the Python layer: 3.11's, or 3.13 and later's
PY_RT       := $(if $(filter 3.11,$(PY_VER)),pp_py_rt311.c,pp_py_rt.c)
# the mod_wsgi built for that Python (sid ships one per version)
WSGI_SO     ?= $(firstword $(wildcard $(WSGI_DIR)/mod_wsgi.so-$(PY_VER)) \
                 $(WSGI_DIR)/mod_wsgi.so)
# pytest runs with the system's python3, whatever Python the module is for
TEST_PYTHON ?= /usr/bin/python3

CORE_SRC    := mod_pyprof/pp_log.c mod_pyprof/pp_parse.c mod_pyprof/pp_hist.c \
               mod_pyprof/pp_store.c mod_pyprof/pp_store_token.c \
               mod_pyprof/pp_store_req.c mod_pyprof/pp_store_sample.c \
               mod_pyprof/pp_store_agg.c mod_pyprof/pp_store_intern.c \
               mod_pyprof/pp_store_read.c mod_pyprof/pp_store_renew.c \
               mod_pyprof/pp_time.c mod_pyprof/pp_profile.c \
               mod_pyprof/pp_resolve.c mod_pyprof/pp_tree.c \
               mod_pyprof/pp_export.c mod_pyprof/pp_views.c \
               mod_pyprof/pp_render.c mod_pyprof/pp_linetable.c \
               mod_pyprof/pp_hash.c mod_pyprof/pp_sink.c mod_pyprof/pp_grow.c \
               mod_pyprof/pp_overview.c mod_pyprof/pp_render_json.c \
               mod_pyprof/pp_render_overview.c mod_pyprof/pp_page_css.c \
               mod_pyprof/pp_render_request.c mod_pyprof/pp_metrics.c \
               mod_pyprof/pp_render_counters.c mod_pyprof/pp_u64map.c \
               mod_pyprof/pp_alloc.c
# the stack reader (no Python header: test_pywalk links it alone)
PYWALK_SRC  := mod_pyprof/pp_py_walk.c mod_pyprof/pp_py_frames.c \
               mod_pyprof/pp_py_code.c mod_pyprof/pp_py_read.c \
               mod_pyprof/pp_py_gil.c mod_pyprof/pp_py_guard.c
# the sampler thread (test_sampler links it with a fake Python layer)
SAMPLER_THREAD_SRC := mod_pyprof/pp_sampler.c mod_pyprof/pp_sampler_classify.c \
                      mod_pyprof/pp_sampler_gil.c
SAMPLER_SRC := $(SAMPLER_THREAD_SRC) $(PYWALK_SRC) \
               mod_pyprof/pp_py_layout.c mod_pyprof/$(PY_RT) \
               mod_pyprof/pp_api.c mod_pyprof/pp_py_alloc.c
GLUE_SRC    := mod_pyprof/mod_pyprof.c mod_pyprof/mod_pyprof_config.c \
               mod_pyprof/mod_pyprof_handler.c mod_pyprof/mod_pyprof_access.c \
               mod_pyprof/mod_pyprof_query.c mod_pyprof/mod_pyprof_pages.c
HEADERS     := $(wildcard mod_pyprof/*.h)
MODULE      := mod_pyprof/.libs/mod_pyprof.so

WARN        := -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
MOD_CFLAGS  := -std=gnu11 -O2 -g $(WARN) -fvisibility=hidden $(PY_INCLUDES)

CC          ?= cc
UNIT_CFLAGS := -std=gnu11 -O1 -g $(WARN) -Imod_pyprof -Itests/support -DUNIT_MODULE_PYTHON='"$(PYTHON)"'
# store writes only tests, fuzzers and benchmarks make; never in the module
TEST_SUPPORT_SRC := tests/support/pp_store_testing.c
TEST_CORE_SRC    := $(CORE_SRC) $(TEST_SUPPORT_SRC)
UNIT_TESTS  := $(patsubst tests/unit/%.c,build/unit/%,$(wildcard tests/unit/test_*.c))

PY_EXT_SUFFIX := $(shell $(PYCONFIG) --extension-suffix 2>/dev/null)
PYEXT       := pyext/pyprof/_pyprof$(PY_EXT_SUFFIX)
PY_SITE     ?= /usr/lib/python3/dist-packages

.PHONY: all deps test unit integration demo demo-stop install clean format format-check \
        bench render-bench pycheck

all: pycheck $(MODULE) $(PYEXT)

# `make print-VAR`: a variable's value (the build tests ask for PY_VER)
print-%:
	@echo '$*=$($*)'

# one clear line when the Python is missing or not one we support
pycheck:
	@if [ -z "$(PY_VER)" ]; then \
	    echo "mod_pyprof: no Python at $(PYTHON) (make deps installs Debian's; PYTHON=/usr/bin/python3.X picks one)" >&2; exit 1; fi
	@case " $(PY_SUPPORTED) " in *" $(PY_VER) "*) ;; *) \
	    echo "mod_pyprof: CPython $(PY_VER) ($(PYTHON)) is not supported; supported: $(PY_SUPPORTED)" >&2; exit 1;; esac
	@if [ -z "$(PY_INCLUDES)" ]; then \
	    echo "mod_pyprof: $(PYCONFIG) not found: install python$(PY_VER)-dev" >&2; exit 1; fi

# the "pyprof" extension, against the Python mod_wsgi links
$(PYEXT): pyext/_pyprof.c mod_pyprof/pp_api.h Makefile | pycheck
	$(CC) -std=gnu11 -O2 -g $(WARN) -fPIC -shared $(PY_INCLUDES) \
	    -Imod_pyprof -o $@ pyext/_pyprof.c

$(MODULE): $(GLUE_SRC) $(CORE_SRC) $(SAMPLER_SRC) $(HEADERS) Makefile | pycheck
	cd mod_pyprof && $(APXS) -c -o mod_pyprof.la \
	    $(foreach f,$(MOD_CFLAGS),-Wc,$(f)) -Wl,-l$(PY_LIB) -lz \
	    $(notdir $(GLUE_SRC) $(CORE_SRC) $(SAMPLER_SRC)) >build.log 2>&1 \
	    || { cat build.log; exit 1; }
	@grep -E 'warning:|error:' mod_pyprof/build.log || true

deps:
	bash scripts/install-deps.sh

# test_pywalk also links the stack reader (it includes no Python header)
build/unit/test_pywalk: tests/unit/test_pywalk.c $(PYWALK_SRC) \
                        $(TEST_CORE_SRC) $(HEADERS) tests/unit/unit.h
	@mkdir -p build/unit
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(PYWALK_SRC) \
	    $(TEST_CORE_SRC) -lcmocka -lz -lm -lpthread

# test_pyguard: the guarded copies and their SIGSEGV handler alone
build/unit/test_pyguard: tests/unit/test_pyguard.c mod_pyprof/pp_py_guard.c \
                         $(HEADERS) tests/unit/unit.h
	@mkdir -p build/unit
	$(CC) $(UNIT_CFLAGS) -o $@ $< mod_pyprof/pp_py_guard.c -lcmocka -lpthread

# test_sampler links the sampler thread with a fake Python layer of its own
build/unit/test_sampler: tests/unit/test_sampler.c $(SAMPLER_THREAD_SRC) \
                         $(TEST_CORE_SRC) $(HEADERS) tests/unit/unit.h
	@mkdir -p build/unit
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(SAMPLER_THREAD_SRC) $(TEST_CORE_SRC) \
	    -lcmocka -lz -lm -lpthread

build/unit/%: tests/unit/%.c $(TEST_CORE_SRC) $(HEADERS) tests/unit/unit.h
	@mkdir -p build/unit
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(TEST_CORE_SRC) -lcmocka -lz -lm -lpthread

# the C core's cmocka tests, then the pyprof package's pure-Python parts
unit: $(UNIT_TESTS)
	@failed=0; for t in $(UNIT_TESTS); do echo "== $$t"; $$t || failed=1; done; \
	    echo "== tests/unit/test_*.py"; \
	    $(TEST_PYTHON) -m pytest -q -p no:cacheprovider tests/unit || failed=1; \
	    exit $$failed

# TEST_FILES= narrows the run to some files (make integration
# TEST_FILES=tests/integration/test_access.py); PYTEST_ARGS= adds options (-k ...)
TEST_FILES ?= tests/integration
integration: $(MODULE) $(PYEXT)
	PYPROF_WSGI_SO=$${PYPROF_WSGI_SO:-$(WSGI_SO)} PYPROF_PYTHON=$(PYTHON) \
	    $(TEST_PYTHON) -m pytest -q $(TEST_FILES) $(PYTEST_ARGS)

test: deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) integration

demo: deps
	$(MAKE) all
	PYPROF_WSGI_SO=$${PYPROF_WSGI_SO:-$(WSGI_SO)} bash scripts/demo.sh start

demo-stop:
	bash scripts/demo.sh stop

bench: $(MODULE)
	$(TEST_PYTHON) tests/bench/overhead.py

build/render_bench: tests/bench/render_bench.c $(TEST_CORE_SRC) $(HEADERS)
	@mkdir -p build
	$(CC) -std=gnu11 -O2 -g $(WARN) -Imod_pyprof -Itests/support -o $@ $< $(TEST_CORE_SRC) -lz -lm -lpthread

render-bench: build/render_bench
	build/render_bench

build/store_write_cost: tests/bench/store_write_cost.c $(TEST_CORE_SRC) $(HEADERS)
	@mkdir -p build
	$(CC) -std=gnu11 -O2 -g $(WARN) -Imod_pyprof -Itests/support -o $@ $< $(TEST_CORE_SRC) -lz -lm -lpthread

# the classification's system calls, warm and cold (no module code)
build/classify_cost: tests/bench/classify_cost.c
	@mkdir -p build
	$(CC) -std=gnu11 -O2 -g $(WARN) -o $@ $< -lpthread

# one sample's walk and store against an embedded Python (the module's)
build/sample_cost: tests/bench/sample_cost.c $(TEST_CORE_SRC) $(SAMPLER_SRC) $(HEADERS) | pycheck
	@mkdir -p build
	$(CC) -std=gnu11 -O2 -g $(WARN) -Imod_pyprof -Itests/support $(PY_INCLUDES) -o $@ $< \
	    $(TEST_CORE_SRC) $(PYWALK_SRC) mod_pyprof/pp_py_layout.c \
	    mod_pyprof/$(PY_RT) $(shell $(PYCONFIG) --embed --ldflags) -lz -lm -lpthread

# the allocator hooks' instructions on a bench view (embedded Python)
build/alloc_insns: tests/bench/alloc_insns.c $(TEST_CORE_SRC) $(SAMPLER_SRC) $(HEADERS) | pycheck
	@mkdir -p build
	$(CC) -std=gnu11 -O2 -g $(WARN) -Imod_pyprof $(PY_INCLUDES) -o $@ $< \
	    $(TEST_CORE_SRC) mod_pyprof/pp_py_alloc.c $(PYWALK_SRC) \
	    mod_pyprof/pp_py_layout.c mod_pyprof/$(PY_RT) \
	    $(shell $(PYCONFIG) --embed --ldflags) -lz -lm -lpthread

install: $(MODULE) $(PYEXT)
	cd mod_pyprof && $(APXS) -i -n pyprof mod_pyprof.la
	install -d $(DESTDIR)$(PY_SITE)/pyprof
	install -m 644 pyext/pyprof/__init__.py $(DESTDIR)$(PY_SITE)/pyprof/
	install -m 755 $(PYEXT) $(DESTDIR)$(PY_SITE)/pyprof/

# every C file of the project, in the style .clang-format describes
# (clang-format 14, Debian 12's: another version may wrap differently)
FORMAT_SRC = $(wildcard mod_pyprof/*.c mod_pyprof/*.h pyext/*.c tests/support/*.[ch] \
                        tests/unit/*.c tests/unit/*.h tests/fuzz/*.c \
                        tests/fuzz/*.h tests/bench/*.c)
format:
	clang-format -i $(FORMAT_SRC)

format-check:
	@command -v clang-format >/dev/null || { echo "format-check: clang-format not installed (make deps)"; exit 2; }
	clang-format --dry-run --Werror $(FORMAT_SRC)

clean:
	rm -f pyext/pyprof/*.so
	rm -rf build mod_pyprof/.libs mod_pyprof/*.la mod_pyprof/*.lo \
	    mod_pyprof/*.slo mod_pyprof/*.o mod_pyprof/build.log

# fuzzing, sanitizer builds, valgrind and lint (docs/HARDENING.md)
include mk/hardening.mk
