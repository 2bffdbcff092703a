# Course kit menu. `make` alone prints it. Every target is a thin wrapper over `coursekit`
# (the package in coursekit/) or over nbgrader/pytest, run inside the pinned virtual environment,
# which is created (or rebuilt when requirements.txt changes) on first use.

PYTHON ?= python3
# uv, for `make lock` only (pinned): resolves one lock for every Python in the range.
UV_VERSION := 0.13.9
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
# nbgrader needs the venv's bin on PATH (it runs alembic from there).
export PATH := $(BIN):$(PATH)
# Real data for tests and CI; instructors may point this elsewhere. Unset → official downloads.
ifneq ($(wildcard ../shared/data),)
export COURSE_DATA_DIR ?= $(abspath ../shared/data)
endif
# OpenMP threads that wait passively where several torch processes share the cores (grading, the
# test workers): there libgomp's default spin-waiting made a U-Net training step ~15x slower (3.5 s
# vs 0.22 s). Not for one notebook alone (`make release`, `make bench`), which runs as in a student's
# Jupyter: there passive waiting made a U-Net epoch 2x slower (3.2 s vs 1.7 s in make bench, 2026-12-02).
test grade grade-smoke mutants colab-check review gradescope-setup-check bench-grading bench-gradescope: export OMP_WAIT_POLICY ?= PASSIVE

ASSIGNMENT ?=
SUBMISSIONS ?= autograder/submissions/$(ASSIGNMENT)
JOBS ?= $(shell nproc)
PYTEST_ARGS ?= --durations=15
# Two pytest workers (pytest-xdist): notebooks and grading batches run side by side; each grading
# batch then uses one sandbox worker per pytest worker's share of the cores.
TEST_WORKERS ?= 2
CELL ?=
LIMIT ?=
STUDENT ?=
DECISION ?=
PORT ?=
NOTE ?=
# `make test ASSIGNMENT=id`: that assignment end to end (its notebook, its generated files, its grading).
TEST_SCOPE := $(if $(ASSIGNMENT),source/$(ASSIGNMENT) tests -k $(ASSIGNMENT),)

.DEFAULT_GOAL := help
.PHONY: help venv release test test-fast grade-smoke mutants colab-venv colab-check grade review formgrade export similarity gradescope gradescope-setup-check bench bench-grading bench-gradescope publish-data lock tidy clean

help: ## this menu
	@echo "Course kit — targets (first run creates .venv: ~2 min)"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-10s %s\n", $$1, $$2}'

# The interpreter is checked before anything is installed (coursekit/pyversion.py, no dependencies):
# outside CPython 3.11.2–3.13 `make venv` stops with one line saying what works and how to get it.
# An existing venv is checked by its own python (it is reused as it is).
VENV_PYTHON = $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
VENV_FIX = $(if $(wildcard $(BIN)/python),rm -rf $(VENV) && make venv PYTHON=python3.12,make venv PYTHON=python3.12)
PYTHON_PROBLEM = $(shell if command -v '$(VENV_PYTHON)' >/dev/null 2>&1; then '$(VENV_PYTHON)' coursekit/pyversion.py '$(VENV_FIX)' 2>&1; \
  else echo "$(VENV_PYTHON) not found: this course needs CPython 3.11.2 to 3.13.x (README, Environment); run: make venv PYTHON=python3.12"; fi)

$(VENV)/.installed: requirements.txt pyproject.toml coursekit/pyversion.py
	$(if $(strip $(PYTHON_PROBLEM)),$(error $(strip $(PYTHON_PROBLEM))))
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq -r requirements.txt
	$(BIN)/python -m pip install -qq --no-deps --no-build-isolation -e .
	@touch $@

venv: $(VENV)/.installed ## create/refresh the pinned virtual environment (.venv)

release: venv ## compile source/ → release/ (student) and solutions/ (executed keys) with nbgrader  [~1–2 min/changed notebook]
	$(BIN)/coursekit build

test: venv ## everything CI runs: nbval on source/, freshness + integrity of release/ and solutions/, grading suite; ASSIGNMENT=id for one  [18–33 min on a quiet 2-core VM, by machine: README]
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(TEST_SCOPE) $(PYTEST_ARGS)

test-fast: venv ## the same without executing notebooks or grading  [under a minute on 2 cores]
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

grade: venv ## grade a class: make grade ASSIGNMENT=id [SUBMISSIONS=zip|dir] [JOBS=n] [FRESH=1] → autograder/results/<id>/
	@test -n "$(ASSIGNMENT)" || (echo "usage: make grade ASSIGNMENT=<id> [SUBMISSIONS=<zip|dir>] [JOBS=n] [FRESH=1]"; exit 2)
	$(BIN)/coursekit grade $(ASSIGNMENT) $(SUBMISSIONS) --jobs $(JOBS) $(if $(FRESH),--fresh)

mutants: venv ## mutation analysis of the hidden tests: make mutants [ASSIGNMENT=id] [CELL=grade_id] [LIMIT=n] → autograder/results/mutants/  [not in make test: README]
	$(BIN)/coursekit mutants $(ASSIGNMENT) $(if $(CELL),--cell $(CELL)) $(if $(LIMIT),--limit $(LIMIT)) --jobs $(JOBS)

review: venv ## submissions that need review: make review ASSIGNMENT=id [STUDENT=s DECISION=accept|reject NOTE=text]
	@test -n "$(ASSIGNMENT)" || (echo "usage: make review ASSIGNMENT=<id> [STUDENT=<s> DECISION=accept|reject NOTE=<text>]"; exit 2)
	$(BIN)/coursekit review $(ASSIGNMENT) $(STUDENT) $(if $(DECISION),--$(DECISION)) $(if $(NOTE),--note "$(NOTE)")

formgrade: venv ## hand-grade and review in nbgrader's formgrader: make formgrade ASSIGNMENT=id [PORT=n] (localhost, token; prints the URL)
	@test -n "$(ASSIGNMENT)" || (echo "usage: make formgrade ASSIGNMENT=<id> [PORT=<n>]"; exit 2)
	$(BIN)/coursekit formgrade $(ASSIGNMENT) $(if $(PORT),--port $(PORT))

export: venv ## grades.csv and cell_scores.csv again from the gradebook, hand grades included: make export ASSIGNMENT=id
	@test -n "$(ASSIGNMENT)" || (echo "usage: make export ASSIGNMENT=<id>"; exit 2)
	$(BIN)/coursekit export $(ASSIGNMENT)

similarity: venv ## code-similarity report over a class's answer cells: make similarity ASSIGNMENT=id [SUBMISSIONS=zip|dir] → autograder/results/<id>/similarity.html
	@test -n "$(ASSIGNMENT)" || (echo "usage: make similarity ASSIGNMENT=<id> [SUBMISSIONS=<zip|dir>]"; exit 2)
	$(BIN)/coursekit similarity $(ASSIGNMENT) $(SUBMISSIONS)

gradescope: venv ## export a Gradescope autograder: make gradescope ASSIGNMENT=id → autograder/gradescope/<id>.zip
	@test -n "$(ASSIGNMENT)" || (echo "usage: make gradescope ASSIGNMENT=<id>"; exit 2)
	$(BIN)/coursekit gradescope $(ASSIGNMENT)

gradescope-setup-check: gradescope ## run the zip's setup.sh in a fresh folder and venv, then grade the reference  [downloads ~1 GB from GitHub and the PyTorch CPU index: not on CI machines]
	rm -rf .build/gradescope && mkdir -p .build/gradescope/source .build/gradescope/submission
	cd .build/gradescope/source && unzip -q ../../../autograder/gradescope/$(ASSIGNMENT).zip
	AUTOGRADER_ROOT=$(abspath .build/gradescope) COURSEKIT_PREFIX=$(abspath .build/gradescope/opt) bash .build/gradescope/source/setup.sh
	$(BIN)/python -c "import coursekit.notebooks as n, sys; s = n.read(n.load_course().assignments['$(ASSIGNMENT)'].notebook('source')); 	  n.write(n.make_submission(n.read(n.load_course().assignments['$(ASSIGNMENT)'].notebook('release')), n.reference_answers(s)), 	  n.Path('.build/gradescope/submission/$(ASSIGNMENT).ipynb'))"
	cp .build/gradescope/source/run_autograder .build/gradescope/run_autograder
	AUTOGRADER_ROOT=$(abspath .build/gradescope) COURSE_DATA_DIR= bash .build/gradescope/run_autograder
	@cat .build/gradescope/results/results.json

grade-smoke: venv ## one small grading batch (resnet_blocks: reference + one wrong answer), as CI runs it on each end of the Python range  [~20 s]
	$(BIN)/python -m pytest -p no:xdist tests/grade_smoke.py -ra $(PYTEST_ARGS)

# Colab's stack (colab-stack.txt): a Python 3.13 (Colab runs 3.13.15; pyenv's newest 3.13 by default).
COLAB_PYTHON ?= $(or $(lastword $(sort $(wildcard /root/.pyenv/versions/3.13.*/bin/python))),$(shell command -v python3.13))
COLAB := .build/colab
colab-venv: $(COLAB)/.installed ## the Python 3.13 venv of Colab's versions that colab-check runs in (.build/colab)  [~3 min, downloads ~4 GB]

$(COLAB)/.installed: colab-stack.txt requirements.txt course.toml coursekit/colab.py
	@test -n "$(COLAB_PYTHON)" && $(COLAB_PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' \
	  || { echo "colab-check needs a Python 3.13, as Colab's: make colab-check COLAB_PYTHON=/path/to/python3.13"; exit 2; }
	rm -rf $(COLAB) && $(COLAB_PYTHON) -m venv $(COLAB)/venv
	$(COLAB)/venv/bin/python -m coursekit.colab requirements > $(COLAB)/requirements.txt
	$(COLAB)/venv/bin/python -m coursekit.colab deferred > $(COLAB)/deferred.txt
	$(COLAB)/venv/bin/python -m coursekit.colab constraints > $(COLAB)/constraints.txt
	$(COLAB)/venv/bin/python -m pip install -qq -r $(COLAB)/requirements.txt -r $(COLAB)/deferred.txt -c $(COLAB)/constraints.txt
	$(COLAB)/venv/bin/python -m pip wheel -qq --no-deps -w $(COLAB)/wheels -r $(COLAB)/deferred.txt
	$(COLAB)/venv/bin/python -m coursekit.colab pretend
	touch $@

# The setup cells install the deferred packages in their Colab path: they are removed first, so that
# every run (a reused venv too) starts from what Colab has.
colab-check: colab-venv ## every source notebook (hidden tests included) on Colab's versions, setup cell in its Colab path  [~10 min on 2 cores with the venv]
	$(COLAB)/venv/bin/python -m pip uninstall -qq -y -r $(COLAB)/deferred.txt
	COURSEKIT_COLAB=1 PIP_NO_INDEX=1 PIP_FIND_LINKS=$(abspath $(COLAB)/wheels) \
	  $(COLAB)/venv/bin/python -m pytest -n $(TEST_WORKERS) --dist loadgroup source/ $(PYTEST_ARGS)
	$(COLAB)/venv/bin/python -m coursekit.colab installed

bench: venv ## run reference notebooks, print measured figures (time, device, metrics): make bench [ASSIGNMENT=id]
	$(BIN)/coursekit bench $(ASSIGNMENT)

bench-gradescope: venv ## each Gradescope autograder on its reference: time and memory per container  [~5 min]
	$(BIN)/python -m benchmarks.gradescope $(ASSIGNMENT)

bench-grading: venv ## grading throughput: 40 reference copies + hostile corpus, JOBS=1 vs 2  [~16 min]
	$(BIN)/python -m benchmarks.grading 1 2

publish-data: venv ## print the lung file's sha256 and the exact step that publishes it for Colab (course.toml [data.*])
	$(BIN)/coursekit publish-data

tidy: venv ## normalise source notebooks (clear outputs, sync generated setup cells)
	$(BIN)/coursekit tidy

lock: ## re-resolve requirements.in into requirements.txt, one lock for Python 3.11.2–3.13 (uv, universal)
	test -x .build/uv/bin/uv || { rm -rf .build/uv && $(PYTHON) -m venv .build/uv && .build/uv/bin/python -m pip install -qq uv==$(UV_VERSION); }
	.build/uv/bin/uv pip compile --quiet --universal --python-version 3.11.2 --no-annotate \
	  --custom-compile-command "make lock" requirements.in -o requirements.txt
	sed -i -e 's/^torch==/torch===/' requirements.txt

clean: ## remove the venv and nbgrader scratch state (never source/, release/, solutions/)
	rm -rf $(VENV) .build gradebook.db .nbgrader.log autograder/work
