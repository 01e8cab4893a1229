# Two entry points, both safe on a fresh machine:
#   make demo   - create .venv if missing, install, run the main job
#   make test   - create .venv if missing, install with test extras, run pytest
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo_output

.PHONY: demo test install install-test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade "pip>=24" >/dev/null

install: $(BIN)/python
	$(BIN)/pip install -e . 

install-test: $(BIN)/python
	$(BIN)/pip install -e ".[test]"

demo: install
	$(BIN)/pixelwise demo --out $(DEMO_OUT)

test: install-test
	$(BIN)/python -m pytest -q

bench: install-test
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info
