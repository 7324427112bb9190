# Two commands for a fresh machine (see README.md):
#   make demo   - create .venv, install epitensor, run the main job on the sample data
#   make test   - create .venv, install epitensor with test extras, run ruff, the tests and the tutorials
# On a machine with a GPU, install the CUDA build of torch into .venv first, or set TORCH=torch.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Real sample data: ../shared/data beside the repository when it is there (else the demo downloads).
export EPITENSOR_DATA ?= $(if $(wildcard ../shared/data/roadmap_pilot),$(abspath ../shared/data),)

.PHONY: demo test install lint tutorials benchmarks clean

$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q ".[test]"
	touch $@

install: $(VENV)/.deps
	$(PY) -m pip install -q --no-deps --force-reinstall .

demo: install
	$(VENV)/bin/epitensor demo --out demo-output

lint: $(VENV)/.deps
	$(VENV)/bin/ruff check .

# The tests run from tests/ so that they import the installed package, not the source tree;
# the tutorials (executed notebooks) run in the same pytest session.
test: install lint
	cd tests && ../$(PY) -m pytest -c ../pyproject.toml --rootdir .. -p no:cacheprovider -q \
		--doctest-modules --pyargs epitensor
	cd tests && ../$(PY) -m pytest -c ../pyproject.toml --rootdir .. -p no:cacheprovider \
		--nbmake --nbmake-timeout=900 $(PYTEST_ARGS) . ../tutorials

tutorials: install
	$(PY) -m pytest -c pyproject.toml --nbmake --nbmake-timeout=900 -p no:cacheprovider tutorials

benchmarks: install
	for f in benchmarks/bench_*.py; do $(PY) $$f; done

clean:
	rm -rf $(VENV) demo-output .pytest_cache
