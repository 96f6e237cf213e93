# mod_pyprof: make | make test | make demo | make install | make clean
#
# Built with apxs against the Python that mod_wsgi links (Debian's 3.11),
# never the python3 that happens to be first on PATH.

APXS        ?= apxs
PYTHON      ?= /usr/bin/python3
PYCONFIG    ?= /usr/bin/python3-config
PY_INCLUDES := $(shell $(PYCONFIG) --includes 2>/dev/null)
PY_LIB      := python3.11

CORE_SRC    := mod_pyprof/pp_log.c mod_pyprof/pp_parse.c mod_pyprof/pp_hist.c \
               mod_pyprof/pp_store.c mod_pyprof/pp_profile.c \
               mod_pyprof/pp_export.c mod_pyprof/pp_views.c \
               mod_pyprof/pp_render.c mod_pyprof/pp_linetable.c
SAMPLER_SRC := mod_pyprof/pp_sampler.c mod_pyprof/pp_frames_py311.c \
               mod_pyprof/pp_api.c
GLUE_SRC    := mod_pyprof/mod_pyprof.c mod_pyprof/mod_pyprof_config.c \
               mod_pyprof/mod_pyprof_handler.c
HEADERS     := $(wildcard mod_pyprof/*.h)
MODULE      := mod_pyprof/.libs/mod_pyprof.so

WARN        := -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
MOD_CFLAGS  := -std=gnu11 -O2 -g $(WARN) -fvisibility=hidden $(PY_INCLUDES)

CC          ?= cc
UNIT_CFLAGS := -std=gnu11 -O1 -g $(WARN) -Imod_pyprof
UNIT_TESTS  := $(patsubst tests/unit/%.c,build/unit/%,$(wildcard tests/unit/test_*.c))

PY_EXT_SUFFIX := $(shell $(PYCONFIG) --extension-suffix 2>/dev/null)
PYEXT       := pyext/pyprof/_pyprof$(PY_EXT_SUFFIX)
PY_SITE     ?= /usr/lib/python3/dist-packages

.PHONY: all deps test unit integration demo demo-stop install clean format bench \
        render-bench

all: $(MODULE) $(PYEXT)

# the "pyprof" extension, against the Python mod_wsgi links
$(PYEXT): pyext/_pyprof.c mod_pyprof/pp_api.h Makefile
	$(CC) -std=gnu11 -O2 -g $(WARN) -fPIC -shared $(PY_INCLUDES) \
	    -Imod_pyprof -o $@ pyext/_pyprof.c

$(MODULE): $(GLUE_SRC) $(CORE_SRC) $(SAMPLER_SRC) $(HEADERS) Makefile
	cd mod_pyprof && $(APXS) -c -o mod_pyprof.la \
	    $(foreach f,$(MOD_CFLAGS),-Wc,$(f)) -Wl,-l$(PY_LIB) -lz \
	    $(notdir $(GLUE_SRC) $(CORE_SRC) $(SAMPLER_SRC)) >build.log 2>&1 \
	    || { cat build.log; exit 1; }
	@grep -E 'warning:|error:' mod_pyprof/build.log || true

deps:
	bash scripts/install-deps.sh

build/unit/%: tests/unit/%.c $(CORE_SRC) $(HEADERS) tests/unit/unit.h
	@mkdir -p build/unit
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(CORE_SRC) -lcmocka -lz -lm -lpthread

unit: $(UNIT_TESTS)
	@failed=0; for t in $(UNIT_TESTS); do echo "== $$t"; $$t || failed=1; done; \
	    exit $$failed

integration: $(MODULE) $(PYEXT)
	$(PYTHON) -m pytest -q tests/integration

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
	$(PYTHON) tests/bench/overhead.py

build/render_bench: tests/bench/render_bench.c $(CORE_SRC) $(HEADERS)
	@mkdir -p build
	$(CC) -std=gnu11 -O2 -g $(WARN) -Imod_pyprof -o $@ $< $(CORE_SRC) -lz -lm -lpthread

render-bench: build/render_bench
	build/render_bench

install: $(MODULE) $(PYEXT)
	cd mod_pyprof && $(APXS) -i -n pyprof mod_pyprof.la
	install -d $(DESTDIR)$(PY_SITE)/pyprof
	install -m 644 pyext/pyprof/__init__.py $(DESTDIR)$(PY_SITE)/pyprof/
	install -m 755 $(PYEXT) $(DESTDIR)$(PY_SITE)/pyprof/

format:
	clang-format -i mod_pyprof/*.c mod_pyprof/*.h tests/unit/*.c tests/unit/*.h

clean:
	rm -f pyext/pyprof/*.so
	rm -rf build mod_pyprof/.libs mod_pyprof/*.la mod_pyprof/*.lo \
	    mod_pyprof/*.slo mod_pyprof/*.o mod_pyprof/build.log

# fuzzing, sanitizer builds, valgrind and lint (docs/HARDENING.md)
include mk/hardening.mk
