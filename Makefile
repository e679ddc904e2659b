# faststream-c: the two commands a new machine needs are `make demo` and
# `make test`. Both install what is missing first. `make demo BROKER=redis`
# (kafka, rabbitmq, nats, mqtt) runs the demo on that broker's local server.
JOBS ?= $(shell nproc)
RELEASE := build/release
DEMO_ARGS ?=
BROKER ?= memory

.PHONY: all deps build test fuzz demo bench install format clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(RELEASE) -DCMAKE_BUILD_TYPE=Release -DFS_BUILD_TESTS=OFF >/dev/null
	@cmake --build $(RELEASE) -j $(JOBS)

test:
	@scripts/test.sh

# libFuzzer on every decoder and parser (tests/fuzz), FUZZ_SECONDS each (120).
fuzz: deps
	@scripts/fuzz.sh

demo: build
	@scripts/demo.sh $(RELEASE) $(BROKER) $(DEMO_ARGS)

bench: build
	@bench/run.sh $(RELEASE)

install: build
	@cmake --install $(RELEASE) $(if $(PREFIX),--prefix $(PREFIX),)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	@rm -rf build
