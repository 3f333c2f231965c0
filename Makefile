# The two commands of the README. Each creates .venv and installs neurofit on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# Test files run on this many processes (each with its own embedded database); 0 runs them in this one.
TEST_WORKERS ?= 2

.PHONY: demo test lint install clean

# deploy/install.sh is the one install: the Dockerfile runs the same script.
$(VENV)/.installed: pyproject.toml Makefile deploy/install.sh
	PYTHON=$(PYTHON) VENV=$(VENV) EXTRAS=test EDITABLE=yes sh deploy/install.sh
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/neurofit demo

test: $(VENV)/.installed
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) *.egg-info
