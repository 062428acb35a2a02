# Convenience wrapper: `make` configures and builds into build/ (CLI at build/bin/vhdx),
# `make test` runs the suite, `make asan` builds and tests under ASan+UBSan in build-asan/.
JOBS ?= $(shell nproc)
BUILD ?= build

.PHONY: all build test asan deps clean format
all: build

deps:
	bash scripts/install-deps.sh

build:
	@test -f $(BUILD)/build.ninja || cmake -S . -B $(BUILD) -G Ninja
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

asan:
	@test -f build-asan/build.ninja || cmake -S . -B build-asan -G Ninja -DVHDX_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf build build-asan
