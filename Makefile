# fleetd - plain GNU Makefile (Redis' src/Makefile style).
#   make            build build/fleetd and build/fleet-replay (the demo fleet)
#   make test       set up missing packages, build, run the whole suite
#   make demo       set up, build, start fleetd and the demo fleet (fleet-replay)
#   make bench      benchmarks against a real redis-server (bench/README.md)
#   make fuzz       build the libFuzzer targets
#   SANITIZER=address|undefined|address,undefined builds an instrumented tree
CC ?= cc
ifeq ($(CC),cc)
CC := gcc
endif
PKGS := libuv libmicrohttpd yaml-0.1 libxxhash jansson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
OPT ?= -O2
CFLAGS ?= $(OPT) -g
CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Isrc $(PKG_CFLAGS)
LDLIBS := $(PKG_LIBS) -lm -lpthread
BUILD ?= build
ifneq ($(SANITIZER),)
CFLAGS += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZER)
BUILD := build/san
endif

LIB_SRC := $(filter-out src/main.c,$(shell find src -name '*.c' | sort))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all test demo demo-stop bench fuzz clean setup unit integration web api-deps
all: $(BUILD)/fleetd $(BUILD)/fleet-replay

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The OpenAPI document is embedded by .incbin (src/net/openapi_blob.c).
$(BUILD)/obj/src/net/openapi_blob.o: src/net/openapi.json

$(BUILD)/libfleetd.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/fleetd: $(BUILD)/obj/src/main.o $(BUILD)/libfleetd.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The demo fleet driver (tools/replay/): a RESP client of fleetd, so it
# links hiredis and nothing of the server.
REPLAY_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tools/replay/*.c))
$(REPLAY_OBJ): CFLAGS += $(shell pkg-config --cflags hiredis 2>/dev/null)
$(BUILD)/fleet-replay: $(REPLAY_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs hiredis 2>/dev/null) -lm

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libfleetd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libfleetd.a $(LDLIBS) -lcmocka

# The zindex test again with allocation-failure injection compiled in: every
# -ENOMEM, including one in the middle of a multi-node split, must leave the
# tree unchanged.
$(BUILD)/tests/test_zindex_faults: tests/unit/test_zindex.c src/geo/zindex.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -DFL_ZINDEX_FAULTS -o $@ $^ -lcmocka

# The log codec with allocation-failure injection: an argv decode that
# cannot grow its arrays returns -ENOMEM and leaves the previous ones.
$(BUILD)/tests/test_log_faults: tests/unit/test_log.c src/store/log.c src/store/wal.c src/util/buf.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -DFL_LOG_FAULTS -o $@ $^ -lxxhash -lcmocka

# A disk that fails on demand (LD_PRELOAD into fleetd by the integration
# tests); built without sanitizers, as it is loaded into any build.
$(BUILD)/tests/libfailio.so: tests/integration/failio.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl

unit: $(UNIT_BIN) $(BUILD)/tests/test_zindex_faults $(BUILD)/tests/test_log_faults \
      $(BUILD)/tests/libfailio.so

setup:
	@sh scripts/setup.sh

test: setup web api-deps
	@bash scripts/run-tests.sh

demo: setup web
	@bash scripts/demo.sh

demo-stop:
	@for p in build/demo/replay.pid build/demo/fleetd.pid; do \
	    [ -f $$p ] && kill $$(cat $$p) 2>/dev/null; rm -f $$p; done; echo "demo stopped"

# The dashboard (web/, bundled into build/web by esbuild). Not part of `all`:
# the C build needs no npm. Rebuilt only when the lock file, the sources or
# the build script change; npm ci runs only when the lock file does.
WEB_OUT := build/web
WEB_SRC := $(wildcard web/src/*) web/build.mjs
web: $(WEB_OUT)/.stamp

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	@touch $@

$(WEB_OUT)/.stamp: web/node_modules/.package-lock.json $(WEB_SRC)
	cd web && npm run build
	@touch $@

# The OpenAPI validator of tests/api (npm): installed when node_modules is
# missing or older than the lock file.
api-deps:
	@if [ ! -d tests/api/node_modules ] || \
	    [ tests/api/package-lock.json -nt tests/api/node_modules ]; then \
	    cd tests/api && npm ci --no-audit --no-fund && touch node_modules; fi

bench: setup
	@bash bench/run.sh

fuzz:
	@$(MAKE) -f tests/fuzz/Makefile

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
