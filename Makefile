# sluice — build with plain make. `make help` lists the targets.
#   make            libsluice.a + sluice (+ the CUDA backend when nvcc is found; CUDA=0 forces CPU)
#   make test       install deps if root, build, run the test suite
#   make demo       tiny synthetic Z-Image model → PNG, end to end
#   make asan       tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make fuzz       libFuzzer targets for the file parsers (FUZZ_SECONDS each)
#   make test-gpu   GPU op parity and model tests (skips without a GPU)
#   make format     clang-format every source file

CC       ?= cc
BUILD    ?= build
OPT      ?= -O2
WERROR   ?=
NVCC     ?= $(shell command -v nvcc 2>/dev/null || (test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc))
CUDA     ?= $(if $(NVCC),1,0)
CUDA_ARCHS ?= 80 86 89 90
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
FUZZ_SECONDS ?= 60
Q        := $(if $(V),,@)

PKGS     := openblas libpng libpcre2-8 libutf8proc
# SYSROOT: a folder holding the Debian -dev packages unpacked (dpkg -x), for machines where they
# cannot be installed (the GPU machine: scripts/gpu_env.sh); otherwise pkg-config finds them.
SYSROOT  ?=
ifneq ($(SYSROOT),)
  SLIB       := $(SYSROOT)/usr/lib/x86_64-linux-gnu
  PKG_CFLAGS := -I$(SYSROOT)/usr/include -I$(SYSROOT)/usr/include/x86_64-linux-gnu/openblas-pthread \
                -I$(SYSROOT)/usr/include/libpng16
  PKG_LIBS   := -L$(SLIB) -L$(SLIB)/openblas-pthread -Wl,--disable-new-dtags \
                -Wl,-rpath,$(SLIB) -Wl,-rpath,$(SLIB)/openblas-pthread \
                -lopenblas -lpng16 -lpcre2-8 -lutf8proc -lcjson
else
  PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
  PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lcjson
endif

CFLAGS   += -std=c11 $(OPT) -g -Wall -Wextra -Wno-unused-parameter -Wno-format-truncation -D_GNU_SOURCE -Isrc -Iinclude \
            -pthread -fPIC $(PKG_CFLAGS) $(WERROR) $(SAN)
LDLIBS   += $(PKG_LIBS) -lm -pthread -ldl

LIB_SRC  := $(shell find src -name '*.c' | sort)
CU_SRC   := $(shell find src -name '*.cu' | sort)
APP_SRC  := $(sort $(wildcard apps/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/*.c))

ifeq ($(CUDA),1)
  CFLAGS  += -DSL_HAVE_CUDA=1 -I$(CUDA_HOME)/include
  NVFLAGS := -std=c++17 -O3 -g -lineinfo -Isrc -Iinclude -Xcompiler -fPIC,-Wall \
             $(foreach a,$(CUDA_ARCHS),-gencode=arch=compute_$(a),code=sm_$(a)) --expt-relaxed-constexpr \
             -DSL_HAVE_CUDA=1 $(if $(WERROR),-Werror all-warnings)
  LDLIBS  += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++
  LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(CU_SRC:%.cu=$(BUILD)/%.cu.o)
else
  LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
endif
APP_OBJ  := $(APP_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

.PHONY: all lib config test demo asan fuzz test-gpu format deps clean help
all: config $(BUILD)/sluice $(BUILD)/sluice-tests

config:
	@echo "sluice build: CC=$(CC) CUDA=$(CUDA)$(if $(filter 1,$(CUDA)), (nvcc $(NVCC), sm_$(CUDA_ARCHS))) BUILD=$(BUILD) $(if $(SAN),SAN=on)"

lib: $(BUILD)/libsluice.a

$(BUILD)/libsluice.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	@echo "  NVCC  $<"
	$(Q)$(NVCC) $(NVFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/sluice: $(APP_OBJ) $(BUILD)/libsluice.a
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $(APP_OBJ) $(BUILD)/libsluice.a $(LDLIBS)

# tests link every object file directly so that tests can reach static-library internals
$(BUILD)/sluice-tests: $(TEST_OBJ) $(BUILD)/libsluice.a
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $(TEST_OBJ) -Wl,--whole-archive $(BUILD)/libsluice.a -Wl,--no-whole-archive $(LDLIBS)

deps:
	@sh scripts/deps.sh

test: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/sluice-tests $(TESTS)

test-gpu: all
	SLUICE_TEST_GPU=1 $(BUILD)/sluice-tests gpu $(TESTS)

demo: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/demo.sh $(BUILD)/sluice

ASAN_BUILD ?= build-asan
asan:
	@$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) CUDA=0 OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(ASAN_BUILD)/sluice-tests $(TESTS)

FUZZ_TARGETS := $(patsubst fuzz/%.c,%,$(wildcard fuzz/fuzz_*.c))
fuzz:
	@$(MAKE) --no-print-directory BUILD=build-fuzz CUDA=0 CC=clang OPT=-O1 \
	    SAN="-fsanitize=address,undefined,fuzzer-no-link -fno-omit-frame-pointer" lib
	@set -e; for t in $(FUZZ_TARGETS); do \
	  clang -std=c11 -O1 -g -D_GNU_SOURCE -Isrc -Iinclude -fsanitize=address,undefined,fuzzer \
	    fuzz/$$t.c build-fuzz/libsluice.a $(LDLIBS) -o build-fuzz/$$t; \
	  mkdir -p build-fuzz/corpus-$$t; \
	  [ -d fuzz/seeds/$$t ] && cp -n fuzz/seeds/$$t/* build-fuzz/corpus-$$t/ 2>/dev/null || true; \
	  echo "fuzzing $$t for $(FUZZ_SECONDS) s"; \
	  build-fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=65536 \
	    build-fuzz/corpus-$$t 2>&1 | tail -n 3; \
	done

format:
	clang-format -i $$(find src apps tests fuzz bench include -name '*.[ch]' -o -name '*.cu')

clean:
	rm -rf build build-asan build-fuzz

help:
	@sed -n '1,10p' Makefile

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
