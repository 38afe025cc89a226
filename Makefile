# Two commands a new user needs (README): `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out

.PHONY: setup demo test test-all clean

setup: $(STAMP)

# torch first, pinned to the CPU build on this disk; a looser pin pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Export the low-light graph of the embedded model, run it on a generated clip, print latency.
demo: setup
	$(BIN)/tvexport --task lowlight --variant realistic --out $(OUT)
	$(BIN)/tvrun --source sample:lowlight --task lowlight --onnx $(OUT)/lowlight.onnx --headless \
		--output $(OUT)/demo.mp4 --stats $(OUT)/stats.json --before-after $(OUT)/before_after.png

test: setup
	$(BIN)/python -m pytest -q

# Everything, including the slow checks (full-size vit_large export and conversion).
test-all: setup
	$(BIN)/python -m pytest -q -m "not gpu and not tensorrt"

clean:
	rm -rf $(OUT) build *.egg-info
