# Two entry points for a fresh clone: `make demo` and `make test`.
# Each creates the virtual environment and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cxrlearn-installed

.PHONY: install demo test test-slow docs bench clean

$(STAMP): setup.cfg pyproject.toml
	@echo "==> creating the virtual environment $(VENV) (first run, or setup.cfg changed)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> installing cxrlearn and its dependencies into $(VENV): TensorFlow, Keras,"
	@echo "    scikit-learn, ... (about 1 GB to download, 3 GB on disk, the first time: minutes)"
	$(PY) -m pip install --disable-pip-version-check --progress-bar on -e ".[tests,docs]"
	touch $(STAMP)
	@echo "==> $(VENV) is ready"

install: $(STAMP)

demo: $(STAMP)
	@echo "==> cxrlearn demo: training the study's CNN on built-in synthetic X-rays"
	$(VENV)/bin/cxrlearn demo

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

bench: $(STAMP)
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/allocator.py
	$(PY) benchmarks/loading.py

clean:
	rm -rf $(VENV) docs/_build docs/generated demo-output
