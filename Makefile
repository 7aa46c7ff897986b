# SCALE: the thin front door. Everything real lives in CMake and scripts/.
#   make run    install what is missing, build, start the local stack (foreground)
#   make up / make down   the same in the background / stop it (data is kept)
#   make test   build with ASan+UBSan and run every test (unit + integration)
#   make bench  build optimised and print the benchmark figures
#   make lint   clang-format check, buf lint
#   make fuzz   build the libFuzzer targets with clang, run each FUZZ_SECONDS (60)
.PHONY: all deps tools build run up down clean-data test bench fuzz lint format clean

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD_DIR ?= build/release
TEST_DIR ?= build/test
BENCH_DIR ?= build/bench
FUZZ_DIR ?= build/fuzz
FUZZ_SECONDS ?= 60
CMAKE_FLAGS ?=

all: build

deps:
	@scripts/deps.sh

tools: deps
	@scripts/tools.sh

build: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSCALE_BUILD_TESTS=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

run: build tools
	@scripts/local.sh run $(BUILD_DIR)

up: build tools
	@scripts/local.sh up $(BUILD_DIR)

down:
	@scripts/local.sh down

clean-data:
	@scripts/local.sh clean-data

test: deps tools
	@cmake -S . -B $(TEST_DIR) -DCMAKE_BUILD_TYPE=Debug -DSCALE_ASAN=ON -DSCALE_UBSAN=ON -DSCALE_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(TEST_DIR) -j $(JOBS)
	@cd $(TEST_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 900

bench: deps
	@cmake -S . -B $(BENCH_DIR) -DCMAKE_BUILD_TYPE=Release -DSCALE_BUILD_BENCH=ON -DSCALE_BUILD_TESTS=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BENCH_DIR) -j $(JOBS)
	@tests/bench/grpc_bench.sh $(BENCH_DIR)
	@tests/bench/import_bench.sh $(BENCH_DIR)

fuzz: deps
	@cmake -S . -B $(FUZZ_DIR) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSCALE_FUZZ=ON -DSCALE_BUILD_TESTS=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(FUZZ_DIR) -j $(JOBS) --target fuzz_all
	@tests/fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SECONDS)

lint: tools
	@scripts/lint.sh

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf build
