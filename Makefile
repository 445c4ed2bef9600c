# Two entry points for a fresh machine: `make demo` and `make test`. Each installs what is missing.
SHELL := /bin/bash
VENV := $(CURDIR)/.venv
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1
# Tests pin libtorch's intra-op threads (it busy-waits on shared cores).
export GUNLEARN_TEST_THREADS ?= 2
# libgomp threads spin while waiting; on 2 shared cores that makes steps many times slower.
export OMP_WAIT_POLICY ?= passive
CARGO ?= cargo
BIN := target/release/gunlearn

.PHONY: setup build demo test bench lint clean-venv gpu-bundle

setup: .venv/.gunlearn-complete

.venv/.gunlearn-complete:
	bash scripts/setup.sh

build: setup
	$(CARGO) build --release

demo: build
	$(BIN) demo

test: setup
	$(CARGO) test --release -- --test-threads=1

bench: build
	$(BIN) bench all

lint: setup
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --release --no-deps

# The binary to copy to a GPU machine (scripts/gpu-check.sh, docs/gpu.md): the release build
# without its debug information — 6 MB instead of ~100 MB, quicker to copy. It loads libtorch
# from LD_LIBRARY_PATH there (the machine's own PyTorch 2.11 libraries).
gpu-bundle: build
	mkdir -p .gpu
	strip -o .gpu/gunlearn.tmp $(BIN) && mv .gpu/gunlearn.tmp .gpu/gunlearn
	@ls -la .gpu/gunlearn
