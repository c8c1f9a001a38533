# Module 07 (optimizers): one source in src/, everything else generated or checked from it.
# `make demo` and `make test` are the two commands a newcomer needs.

VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
# nbgrader finds autograder/nbgrader_config.py through the Jupyter config path.
NBGRADER := JUPYTER_CONFIG_PATH=$(CURDIR)/autograder $(VENV)/bin/nbgrader
ASSIGNMENT := 07_optimizers
DEST ?= ../optimizers-07-student

.PHONY: help env instructor-env demo lint test test-fast test-e2e generate reference check-drift run-notebook sample-class \
        autograde feedback grades report book student-dist bench clean

help:
	@echo "make demo      set up .venv, regenerate from src/, run the notebook, grade the sample class in demo/"
	@echo "make test      the whole test suite (nbgrader, sandbox, kernels, book, browser)"
	@echo "make generate  src/ -> content/m07_optimizers/solution/, source/ and modules/ notebooks, tinytorch placeholders"
	@echo "make reference content/m07_optimizers/reference/<component>.json from src/"
	@echo "make autograde [FORCE=1] [JOBS=N|SCHEDULER=ADDR] / feedback / grades   grade submitted/ (resumes), feedback, CSV"
	@echo "make report    class report: reports/$(ASSIGNMENT).html and .csv (after make autograde; COURSE=demo for the demo)"
	@echo "make env (students' JupyterLab) | instructor-env (with nbgrader's formgrader)"
	@echo "make book | student-dist DEST=dir [FORCE=1] | bench | clean (build outputs and demo/, never course data)"

env: $(VENV)/.installed

# A student's JupyterLab, as on Binder: binder/postBuild switches nbgrader's instructor tools off.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	bash binder/postBuild
	touch $@

# An instructor's JupyterLab: formgrader, create-assignment and course list switched back on.
instructor-env: env
	$(PY) -m tools.instructor_env

generate: env
	$(PY) -m tools.generate

reference: env
	$(PY) -m tools.reference

check-drift: env
	$(PY) -m tools.generate --check
	$(PY) -m tools.reference --check

run-notebook: env
	$(PY) -m tools.run_notebook source/$(ASSIGNMENT)/optimizers.ipynb

# The sample class is a course of its own, demo/ (git-ignored): rebuilding it replaces only demo/.
# The course's data (submitted/, autograded/, feedback/, gradebook.db, grades.csv, reports/,
# exchange/, downloaded/) is written only by autograde, feedback, grades and report, never deleted.
sample-class: env
	rm -rf demo
	$(PY) -m tools.sample_class demo

# Grades demo/ with nbgrader into demo/gradebook.db; then `make report COURSE=demo`.
# Without bubblewrap: only the sample notebooks that are not attacks, unsandboxed and announced.
demo: generate reference run-notebook sample-class
	$(PY) -m tools.demo --course demo

# Style and layering first (seconds), then the suite.
lint: env
	$(VENV)/bin/ruff check --quiet .
	$(VENV)/bin/ruff format --check --quiet .
	$(VENV)/bin/lint-imports --no-cache

# The whole suite, in TEST_WORKERS pytest-xdist workers (0: one process), a test file per worker at
# a time (its module fixtures built once); tests/sharing.py builds the session's expensive fixtures
# once for all workers. The 15 slowest tests are listed at the end. Three workers on this 2-core
# machine: many tests wait (on a hanging submission's budget, a subprocess, a browser), and a third
# worker fills those waits (measured: 14:55 against 16:19 and 17:17 with two, same machine and hour).
TEST_WORKERS ?= 3
test: env lint
	$(PY) -m pytest -q --durations=15 -n $(TEST_WORKERS) --dist loadfile

test-fast: env
	$(PY) -m pytest -q -m "not slow"

test-e2e: env
	$(PY) -m pytest -q -m e2e

# The repository is an nbgrader course: these run the real nbgrader on submitted/.
# autograde resumes: students already graded are skipped unless FORCE=1; JOBS=N or SCHEDULER=tcp://...
# grade concurrently (with AUTOGRADER_DB_URL pointing at PostgreSQL).
autograde: env
	$(PY) -m tools.generate --gradebook
	$(PY) -m autograder course-autograde $(ASSIGNMENT) $(if $(FORCE),--force) $(if $(JOBS),--jobs $(JOBS)) \
		$(if $(SCHEDULER),--scheduler $(SCHEDULER))

feedback: env
	$(NBGRADER) generate_feedback $(ASSIGNMENT) --force --log-level=WARN
	@echo "feedback written to feedback/<student>/$(ASSIGNMENT)/optimizers.html"

grades: env
	$(NBGRADER) export --to grades.csv --log-level=WARN
	@echo "grades written to grades.csv"

report: env
	$(PY) -m autograder.pages.report $(if $(COURSE),--course $(COURSE))

book: env
	npm ci --no-audit --no-fund --silent
	$(PY) -m tools.book

student-dist: env
	$(PY) -m tools.student_dist $(DEST) $(if $(FORCE),--force)

bench: env
	$(PY) -m bench

# Build outputs only: never the course's data (see sample-class above).
clean:
	rm -rf _build build artifacts demo .pytest_cache expected.json
