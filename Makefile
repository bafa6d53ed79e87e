# reid-hub: `make demo` sets up and runs the default model on the shipped demo video; `make test` runs the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test candidates bench report clean space wheel

install: $(STAMP)

# torch/torchvision are pinned to the pair that installs offline here (timm needs torchvision).
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[serve,ray,dev,local]'
	# Schemathesis (API fuzzing in the tests) in its own venv: its pyrate-limiter pin conflicts with wildlife-datasets'
	$(PY) -m venv $(VENV)-fuzz
	$(VENV)-fuzz/bin/pip install -q 'schemathesis>=4.3,<5'
	touch $(STAMP)

# the identification demo on the shipped video, then the web app (REST API + Gradio UI) on 127.0.0.1:7860
demo: install
	HF_HUB_OFFLINE=1 $(BIN)/reid-hub demo
	HF_HUB_OFFLINE=1 $(BIN)/reid-hub serve

# assemble a folder that can be pushed as a Hugging Face Space as is
# (the package with its shipped files where a wheel has them: reid_hub/model_cards, reid_hub/examples)
space:
	rm -rf build/space && mkdir -p build/space
	cp serve/app.py serve/README.md serve/requirements.txt build/space/
	cp -r reid_hub build/space/reid_hub && cp -r examples build/space/reid_hub/examples
	mkdir -p build/space/reid_hub/model_cards
	cp -r model_cards/multispecies-v2 model_cards/TEMPLATE.md build/space/reid_hub/model_cards/
	find build/space -name __pycache__ -prune -exec rm -rf {} +

# the wheel (the released models and the demo's data inside) in dist/
wheel: install
	$(BIN)/pip wheel -q --no-deps --no-build-isolation . -w dist

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

# train the release candidates on ../shared/data (resumable; long: run in the background)
candidates: install
	$(BIN)/python tools/train_candidates.py

bench: install
	$(BIN)/python benchmarks/embed_throughput.py

clean:
	rm -rf $(VENV) $(VENV)-fuzz .pytest_cache

# the performance report (throughput local vs Ray, search vs size per index kind, video cost): JSON + PNG
report: install
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/scale_report.py
