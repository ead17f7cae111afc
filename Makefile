# Scion: build, test and demo. `make demo` and `make test` work on a fresh Debian machine with Swift.

DEBIAN_PACKAGES := libhdf5-dev libprotobuf-c-dev protobuf-c-compiler zlib1g-dev libopenblas-dev libturbojpeg0-dev libpng-dev libgraphviz-dev pkg-config
SWIFT ?= swift
SCION_DEBUG := .build/debug/scion
SCION_RELEASE := .build/release/scion
DEMO_MODEL := fixtures/keras2/mobilenet_v2.h5

ORACLE_VENV := .build/oracle-venv
ORACLE_PYTHON := $(ORACLE_VENV)/bin/python

.PHONY: all deps build release install test unit-test interop fuzz asan-corpus oracle onnx-node-cases demo bench cli-doc docs clean

all: build

# Installs only the Debian packages that are missing; quick when all are present.
deps:
	@missing=""; for package in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Copies the release binary (and the resources it carries) to $(PREFIX)/bin.
PREFIX ?= /usr/local
install: release
	install -d $(PREFIX)/bin
	cp -R $$($(SWIFT) build -c release --show-bin-path)/scion $(PREFIX)/bin/
	@for bundle in $$($(SWIFT) build -c release --show-bin-path)/*.resources; do \
	  [ -e "$$bundle" ] && cp -R "$$bundle" $(PREFIX)/bin/ || true; done
	@echo "installed $(PREFIX)/bin/scion"

# docs/cli.md's reference part, regenerated from every command's --help (CLIReferenceTests checks it).
cli-doc: build
	scripts/cli-doc.sh $(SCION_DEBUG)

# The library's documentation: the DocC catalog Sources/Scion/Scion.docc (overview and articles) with the
# IR, passes and runtime that `import Scion` brings, as one archive; any DocC warning (a broken symbol
# link...) fails the build. Read it with `python3 -m http.server -d $(DOCS_ARCHIVE)` at
# http://localhost:8000/documentation/scion. Not part of `make test`; its articles' code is
# (Tests/ScionTests/LibraryFrontDoorTests.swift).
DOCS_ARCHIVE := .build/docs/Scion.doccarchive
docs: deps
	mkdir -p $(dir $(DOCS_ARCHIVE))
	$(SWIFT) package --allow-writing-to-directory $(dir $(DOCS_ARCHIVE)) generate-documentation \
	  --target Scion --target ScionIR --target ScionPasses --target ScionRuntime --enable-experimental-combined-documentation \
	  --warnings-as-errors --output-path $(DOCS_ARCHIVE)

test: unit-test interop fuzz asan-corpus

# The XCTests on every core, one process per test (about 40% less time on two cores than one after
# another); XCTest prints no summary in that mode, so scripts/xunit_summary.py restates it from the
# xUnit report.
UNIT_REPORT := .build/unit-tests.xml
unit-test: deps onnx-node-cases
	$(SWIFT) build --build-tests
	rm -f $(UNIT_REPORT); status=0; \
	SCION_INTEROP_DIR=$(CURDIR)/.build/interop-tests $(SWIFT) test --skip-build --disable-swift-testing \
	  --parallel --num-workers $$(nproc) --xunit-output $(UNIT_REPORT) || status=$$?; \
	[ -f $(UNIT_REPORT) ] && python3 scripts/xunit_summary.py $(UNIT_REPORT); exit $$status

# The real tools as oracles: onnx's checker, onnxruntime and Keras 3 (JAX), in a venv of their own
# (about a minute to install).
oracle: $(ORACLE_PYTHON)
$(ORACLE_PYTHON): Tests/Interop/requirements.txt
	python3 -m venv $(ORACLE_VENV)
	$(ORACLE_VENV)/bin/pip install -q -r Tests/Interop/requirements.txt
	touch $(ORACLE_PYTHON)

# The onnx wheel's backend node test cases, generated from the wheel's own case generators (it ships
# no node/ data folder) into .build/onnx-node-cases once per onnx version: ONNXCoverageTests derives
# docs/onnx-coverage.md from them, check_run.py --node-cases runs the ones that page says Scion runs.
NODE_CASES := .build/onnx-node-cases
onnx-node-cases: oracle
	$(ORACLE_PYTHON) scripts/make_onnx_node_cases.py --out $(NODE_CASES)

# Every fixture converted to ONNX must pass the checker and give Keras's numbers in onnxruntime; every
# ONNX file the Swift tests wrote must pass the checker and load; the onnx wheel's backend test models
# read into the IR and written back must give their expected outputs (docs/onnx-conformance.md);
# every Keras file Scion writes, from Keras files and from ONNX (torch's and tf2onnx's), must load in
# Keras 3 and predict what its source predicts (docs/keras-writers.md, docs/onnx-to-keras.md); cut and
# grafted models must give Keras's own feature models' numbers (docs/surgery.md); `scion run` must give
# the ONNX backend cases' stored outputs (docs/runtime.md); `scion finetune` must train a head as
# Keras's fit() does (docs/finetune.md); `scion predict` and `evaluate` must give Keras's, onnxruntime's
# and NumPy's numbers (docs/predict-evaluate.md).
# XLA_FLAGS: the oracles' models are tiny, so compiling Keras's JAX programs costs more than running
# them; without LLVM's optimisations the checkers take about a quarter less time, with the same numbers
# to well within the 1e-4 agreement.
interop: build oracle onnx-node-cases
	KERAS_BACKEND=jax XLA_FLAGS=--xla_backend_optimization_level=0 $(ORACLE_PYTHON) Tests/Interop/run_checkers.py \
	  "$(ORACLE_PYTHON) Tests/Interop/check_keras.py --h5 --scion $(SCION_DEBUG) --folder fixtures/keras3" \
	  "$(ORACLE_PYTHON) Tests/Interop/check_onnx_keras.py --h5 --runtime-ops --scion $(SCION_DEBUG) --torch --tf2onnx fixtures/tf2onnx --tf2onnx fixtures/torch" \
	  "$(ORACLE_PYTHON) Tests/Interop/check_finetune.py --scion $(SCION_DEBUG)" \
	  "$(ORACLE_PYTHON) Tests/Interop/check_predict.py --scion $(SCION_DEBUG)" \
	  "$(ORACLE_PYTHON) Tests/Interop/check_torch.py --scion $(SCION_DEBUG)" \
	  "$(ORACLE_PYTHON) Tests/Interop/check_keras.py --h5 --scion $(SCION_DEBUG) --folder fixtures/keras2" \
	  "$(ORACLE_PYTHON) Tests/Interop/check_surgery.py --scion $(SCION_DEBUG)" \
	  "$(ORACLE_PYTHON) Tests/Interop/check_torch_attention.py --scion $(SCION_DEBUG)" \
	  "$(ORACLE_PYTHON) Tests/Interop/check_onnx_roundtrip.py --scion $(SCION_DEBUG) --quiet" \
	  "$(ORACLE_PYTHON) Tests/Interop/check_onnx.py --scion $(SCION_DEBUG) --also $(CURDIR)/.build/interop-tests" \
	  "$(ORACLE_PYTHON) Tests/Interop/check_run.py --backend --node-cases $(NODE_CASES) --scion $(SCION_DEBUG)"

# Scion's main job on the bundled example: transfer learning end to end. A CNN pretrained by Keras on
# digits 0-4 (shipped with the binary: Sources/ScionCommand/Resources/digits) is cut, grafted with a head
# for digits 5-9, frozen, trained on 5 images per class, fine-tuned, compared with training from scratch,
# written as .keras and .onnx and verified; .build/demo/report.html has the learning curves. `scion diff`
# then lists what changed between the pretrained model and the fine-tuned ONNX file (exit 3: they differ).
DEMO_DIGITS := Sources/ScionCommand/Resources/digits
demo: build
	$(SCION_DEBUG) demo -o .build/demo --force
	@echo "== What changed between the pretrained model and the fine-tuned ONNX file (read back)"
	$(SCION_DEBUG) diff $(DEMO_DIGITS)/digits_cnn.keras .build/demo/digits_5_9.onnx || [ $$? -eq 3 ]

# The readers under libFuzzer and AddressSanitizer: the hostile corpus once, then FUZZ_SECONDS (30)
# of fuzzing per reader from the fixtures (docs/hostile-inputs.md).
fuzz: deps
	scripts/fuzz.sh

# The hostile corpus through the scion command built with AddressSanitizer.
asan-corpus: deps
	scripts/asan-corpus.sh

bench: release
	bench/inspect_bench.py

clean:
	rm -rf .build
