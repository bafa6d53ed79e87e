# reid-hub: `make demo` sets up and runs the default model on the shipped demo video; `make test` runs the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test candidates evaluate bench clean

install: $(STAMP)

# torch/torchvision are pinned to the pair that installs offline here (timm needs torchvision).
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[serve,dev]'
	touch $(STAMP)

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/reid-hub demo

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

# train the release candidates on ../shared/data (resumable; long: run in the background)
candidates: install
	$(BIN)/python benchmarks/train_candidates.py

bench: install
	$(BIN)/python benchmarks/embed_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache
