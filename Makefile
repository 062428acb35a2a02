# Entry points; each first installs missing Debian packages (scripts/install-deps.sh).
#   make        configure and build into build/ (the CLI is build/bin/vhdx)
#   make demo   run the built-in example (scripts/demo.sh)
#   make test   build and run the whole test suite with CTest
#   make asan   build into build-asan/ with ASan+UBSan and run the suite there
#   make valgrind
#               build into build-valgrind/ (-O1 -g) and run a subset of the interop tests under
#               valgrind memcheck: the test processes (CTest's emulator is
#               tests/interop/valgrind.sh) and every vhdx process they spawn (bin/vhdx becomes a
#               wrapper around bin/vhdx.real), not qemu-img/qemu-io/vhdiinfo/vhdimount. Fails on
#               any memory error or definite/indirect/possible leak, in any process. No
#               suppression file is used. The subset (VALGRIND_TESTS: every cell with 1 MiB blocks
#               of both interop matrices, and one 32 MiB-block cell of ours) keeps it near
#               10 minutes on 2 cores; VALGRIND_TESTS=. runs all of tests/interop (hours).
JOBS ?= $(shell nproc)
BUILD ?= build
VALGRIND_BUILD ?= build-valgrind
VALGRIND_TESTS ?= QemuInteropTest\..*/(dynamic|fixed)_b1m_|OurImagesTest\..*/((dynamic|fixed)_b1m_|dynamic_b32m_log4m_s512_odd)

.PHONY: all build test asan valgrind deps demo clean format
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

valgrind: deps
	@test -f $(VALGRIND_BUILD)/build.ninja || cmake -S . -B $(VALGRIND_BUILD) -G Ninja \
	  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
	  "-DCMAKE_CROSSCOMPILING_EMULATOR=bash;$(CURDIR)/tests/interop/valgrind.sh"
	cmake --build $(VALGRIND_BUILD) -j $(JOBS) --target vhdx qemu_interop_test our_images_test
	@# A freshly linked bin/vhdx (ELF) moves to vhdx.real behind a wrapper that runs it under memcheck.
	@if head -c 4 $(VALGRIND_BUILD)/bin/vhdx | grep -q ELF; then \
	  mv $(VALGRIND_BUILD)/bin/vhdx $(VALGRIND_BUILD)/bin/vhdx.real; \
	  printf '#!/bin/sh\nexec bash %s "$$(dirname "$$0")/vhdx.real" "$$@"\n' \
	    "$(CURDIR)/tests/interop/valgrind.sh" > $(VALGRIND_BUILD)/bin/vhdx; \
	  chmod +x $(VALGRIND_BUILD)/bin/vhdx; \
	fi
	rm -rf $(VALGRIND_BUILD)/valgrind-logs && mkdir -p $(VALGRIND_BUILD)/valgrind-logs
	cd $(VALGRIND_BUILD) && VHDX_VALGRIND_LOGS=$(CURDIR)/$(VALGRIND_BUILD)/valgrind-logs \
	  ctest --output-on-failure --no-tests=error -j $(JOBS) -R '$(VALGRIND_TESTS)'
	@# Every memcheck report must say 0 errors (logs without a summary are forks that exec'd a shell).
	@cd $(VALGRIND_BUILD)/valgrind-logs; \
	reports=$$(grep -l 'ERROR SUMMARY' *.log); \
	clis=$$(grep -l 'Command: .*/vhdx.real' $$reports | wc -l); \
	bad=$$(grep -L 'ERROR SUMMARY: 0 errors' $$reports || true); \
	if [ -n "$$bad" ]; then cat $$bad; echo "valgrind: errors in: $$bad"; exit 1; fi; \
	if [ "$$clis" -eq 0 ]; then echo "valgrind: no vhdx process ran under memcheck"; exit 1; fi; \
	echo "valgrind: $$(echo $$reports | wc -w) processes ($$clis vhdx), 0 errors"

demo: build
	bash scripts/demo.sh

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf build build-asan build-valgrind
