# Entry points; each first installs missing Debian packages (scripts/install-deps.sh).
#   make        configure and build into build/ (the CLI is build/bin/vhdx)
#   make demo   run the built-in example (scripts/demo.sh)
#   make test   build and run the whole test suite with CTest
#   make asan   build into build-asan/ with ASan+UBSan and run the suite there
JOBS ?= $(shell nproc)
BUILD ?= build

.PHONY: all build test asan deps demo clean format
all: build

deps:
	bash scripts/install-deps.sh

build: deps
	@test -f $(BUILD)/build.ninja || cmake -S . -B $(BUILD) -G Ninja
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

asan: deps
	@test -f build-asan/build.ninja || cmake -S . -B build-asan -G Ninja -DVHDX_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

demo: build
	bash scripts/demo.sh

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf build build-asan
