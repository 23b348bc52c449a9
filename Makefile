# Two commands a reader needs (see README.md):
#   make book   set up .venv, execute the chapters and build the HTML book into _build/html
#   make test   set up .venv and run every test: nblib's unit tests, nbval over the chapters,
#               the static notebook checks, the book build with warnings as errors
# Everything runs offline except the package registry (pip).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JB     := $(BIN)/jupyter-book
NBCHECK := ../shared/tools/nbcheck.py
export PYTHONHASHSEED := 0
# No progress bars in executed notebooks: on a built page a finished bar is noise.
export NBLIB_PROGRESS := 0

.PHONY: help setup data book book-noexec execute test unit nbval nbcheck lab constraints clean

help:
	@echo "make book   - set up, execute the chapters and build the HTML book (_build/html)"
	@echo "make test   - set up and run the whole test suite"
	@echo "make lab    - set up and open the chapters in JupyterLab"
	@echo "make execute - re-run the chapters in place, to commit their outputs"
	@echo "make clean  - remove the build (keeps .venv and the MNIST cache)"

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

# --- the book -------------------------------------------------------------------------------
book: data
	$(JB) build . -W -n --keep-going
	@echo
	@echo "The book is in _build/html. Open it with:"
	@echo "  python3 -m webbrowser file://$(CURDIR)/_build/html/index.html"
	@echo "or serve it:  python3 -m http.server -d _build/html 8000  (then http://localhost:8000)"

# Build from the outputs committed in the notebooks (nbval has just checked that they
# reproduce), so the test run does not execute every chapter a second time.
book-noexec: setup
	$(BIN)/python .ci/noexec_config.py > _build_noexec_config.yml
	$(JB) build . -W -n --keep-going --config _build_noexec_config.yml; rc=$$?; rm -f _build_noexec_config.yml; exit $$rc

# Re-execute the chapters in place (after changing a chapter or nblib), to commit their outputs.
execute: data
	$(BIN)/jupyter execute --inplace --timeout=1200 --NotebookClient.record_timing=False chapters/*.ipynb

# --- tests ----------------------------------------------------------------------------------
unit: setup
	$(BIN)/python -m pytest tests

nbval: data
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		-p no:cacheprovider chapters

nbcheck:
	@if [ -f $(NBCHECK) ]; then python3 $(NBCHECK) .; else echo "nbcheck: $(NBCHECK) not found, skipped"; fi

test: unit nbval nbcheck book-noexec
	@echo "make test: all passed"

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
