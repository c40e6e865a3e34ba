# hpcri build.  `make` builds into build/, `make SAN=1` into build-asan/ with
# AddressSanitizer + UBSan.  `make check` runs the whole suite (both builds).
CC      ?= cc
SAN     ?= 0
ifeq ($(SAN),1)
BUILD   ?= build-asan
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   ?= build
SANFLAGS =
endif

# The daemon links BASE_PKGS only; the image helper (hpcri-image: registry
# pulls, layer unpacking, imports) also IMAGE_PKGS (docs/ARCHITECTURE.md).
BASE_PKGS  = libnghttp2 libprotobuf-c sqlite3 jansson inih nettle zlib
IMAGE_PKGS = libcurl libarchive libcrypto
PKGS     = $(BASE_PKGS) $(IMAGE_PKGS)
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wno-missing-field-initializers -pthread \
           -D_GNU_SOURCE -Ulinux -Isrc -I$(BUILD)/gen $(SANFLAGS) $(shell pkg-config --cflags $(PKGS))
BASE_LDLIBS = $(shell pkg-config --libs $(BASE_PKGS)) -pthread
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -pthread
LDFLAGS += $(SANFLAGS) -Wl,--as-needed

PROTOS   = $(wildcard proto/*.proto)
GEN_C    = $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
GEN_H    = $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.h,$(PROTOS))
GEN_OBJS = $(patsubst proto/%.proto,$(BUILD)/obj/gen/%.pb-c.o,$(PROTOS))

# Image work on untrusted input, in the helper only (libhpcri-image.a).
IMG_SRCS = $(addprefix src/image/,registry.c unpack.c import.c pull.c content_write.c chain.c)
IMG_OBJS = $(patsubst src/%.c,$(BUILD)/obj/%.o,$(IMG_SRCS))
LIB_SRCS = $(filter-out $(IMG_SRCS),$(wildcard src/util/*.c src/rpc/*.c src/store/*.c \
                      src/config/*.c src/cri/*.c src/backend/*.c src/backend/*/*.c src/image/*.c \
                      src/stream/*.c))
LIB_OBJS = $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRCS)) $(GEN_OBJS)
LIBS_ALL = $(BUILD)/libhpcri-image.a $(BUILD)/libhpcri.a
CTL_SRCS = $(wildcard src/ctl/*.c)
CTL_OBJS = $(patsubst src/%.c,$(BUILD)/obj/%.o,$(CTL_SRCS))
UNIT_SRCS = $(wildcard tests/unit/test_*.c)
UNIT_BINS = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
FUZZ_SRCS = $(wildcard tests/fuzz/fuzz_*.c)

all: $(BUILD)/hpcri $(BUILD)/hpcri-image $(BUILD)/hpcri-ctl $(BUILD)/hpcri-pause $(BUILD)/hpcri-step $(BUILD)/bench-rpc $(BUILD)/bench-lifecycle $(UNIT_BINS) pyproto

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $<

# Python modules for the integration tests (python3-protobuf + python3-grpcio).
PYGEN = $(patsubst proto/%.proto,$(BUILD)/py/%_pb2.py,$(PROTOS))
pyproto: $(PYGEN)
$(BUILD)/py/%_pb2.py: proto/%.proto
	@mkdir -p $(BUILD)/py
	protoc --proto_path=proto --python_out=$(BUILD)/py $<

# Generated headers include each other (hpcri.pb-c.h -> api.pb-c.h): every
# generated object waits for all of them, and none is deleted as an
# intermediate (that made the next -j build race to regenerate them).
.SECONDARY: $(GEN_C) $(GEN_H)
$(BUILD)/obj/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -Werror,$(CFLAGS)) -c -o $@ $<

$(BUILD)/obj/%.o: src/%.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/libhpcri.a: $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libhpcri-image.a: $(IMG_OBJS)
	rm -f $@ && ar rcs $@ $^

# The daemon: no libcurl, libarchive or libcrypto (tests/integration/test_images.py
# checks with ldd).
$(BUILD)/hpcri: $(BUILD)/obj/main.o $(BUILD)/libhpcri.a
	$(CC) $(LDFLAGS) -o $@ $^ $(BASE_LDLIBS)

# The image helper the daemon runs per pull/import (src/imagehelper/main.c).
$(BUILD)/hpcri-image: $(BUILD)/obj/imagehelper/main.o $(LIBS_ALL)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/hpcri-ctl: $(CTL_OBJS) $(BUILD)/libhpcri.a
	$(CC) $(LDFLAGS) -o $@ $^ $(BASE_LDLIBS)

# The pod sandbox's pause process: static, no libc dependencies at run time.
$(BUILD)/hpcri-pause: src/pause/pause.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -static -o $@ $<

# The Slurm container step helper (docs/slurm.md "Stats"): runs on the compute
# nodes inside the step, so static like the pause process.
$(BUILD)/hpcri-step: src/slurmstep/main.c src/backend/slurm/sample.c src/backend/slurm/sample.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -Isrc -static -o $@ \
		src/slurmstep/main.c src/backend/slurm/sample.c

$(BUILD)/tests/%: tests/unit/%.c tests/unit/t.h $(LIBS_ALL)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(LIBS_ALL) $(LDLIBS)

check:
	tests/run-all.sh

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h' 'bench/*.c')

format-check:
	clang-format --dry-run -Werror $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h' 'bench/*.c')

clean:
	rm -rf build build-asan

.PHONY: all check clean format format-check pyproto
-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

demo: all
	scripts/demo.sh
.PHONY: demo

# Benchmarks (bench/README.md): one command each, print numbers.
$(BUILD)/bench-rpc: bench/rpc.c $(BUILD)/libhpcri.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libhpcri.a $(BASE_LDLIBS)

bench-rpc: $(BUILD)/hpcri $(BUILD)/hpcri-ctl $(BUILD)/bench-rpc
	bench/rpc.sh --no-build
.PHONY: bench-rpc

# libFuzzer targets (clang); tests/test_fuzz.py runs each for a bounded time.
FUZZFLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -std=gnu11 -D_GNU_SOURCE -Ulinux -Isrc
fuzz: build/fuzz/fuzz_unpack build/fuzz/fuzz_manifest
build/fuzz/fuzz_unpack: tests/fuzz/fuzz_unpack.c src/image/unpack.c src/image/rmtree.c src/util/err.c src/util/log.c
	@mkdir -p $(dir $@)
	clang $(FUZZFLAGS) $^ $(shell pkg-config --cflags --libs libarchive libcrypto) -o $@
build/fuzz/fuzz_manifest: tests/fuzz/fuzz_manifest.c src/image/manifest.c src/util/err.c src/util/log.c
	@mkdir -p $(dir $@)
	clang $(FUZZFLAGS) $^ $(shell pkg-config --cflags --libs jansson) -o $@
.PHONY: fuzz

$(BUILD)/bench-lifecycle: bench/lifecycle.c $(BUILD)/libhpcri.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libhpcri.a $(BASE_LDLIBS)

bench-lifecycle: $(BUILD)/hpcri $(BUILD)/hpcri-image $(BUILD)/hpcri-ctl $(BUILD)/hpcri-pause $(BUILD)/bench-lifecycle
	bench/lifecycle.sh --no-build
.PHONY: bench-lifecycle
