# Two entry points for a fresh machine (Python 3.11+):
#   make demo   set up .venv and run the main job on the shipped sample
#   make test   set up .venv and run lint, type checks and the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo
# The CPU build of torch; on a CUDA machine install the CUDA build your driver needs instead.
TORCH_VERSION ?= 2.13.0

.PHONY: setup chromium demo test lint bench clean

MASTRA := examples/mastra

setup: $(VENV)/.installed $(MASTRA)/node_modules/.installed chromium

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -e '.[dev,local,train,serve]'
	touch $@

# The Mastra example's packages, Node 22 included (npm's `node` package; the test runs the example).
$(MASTRA)/node_modules/.installed: $(MASTRA)/package-lock.json
	cd $(MASTRA) && npm ci --no-audit --no-fund --silent
	touch $@

# Debian's chromium, for the report's browser test (playwright drives it; nothing downloads a browser).
chromium:
	@command -v chromium > /dev/null || command -v chromium-browser > /dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium; }

# The demo needs the Python environment only (the browser and the Mastra example are for the tests).
demo: $(VENV)/.installed
	scripts/demo.sh $(DEMO_DIR)

lint: setup
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/cog --check --diff --check-fail-msg 'regenerate: $(BIN)/cog -r docs/commands.md' docs/commands.md

test: lint
	$(BIN)/pytest --runnetwork

bench: setup
	$(BIN)/python bench/prepare_60k.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) $(MASTRA)/node_modules
