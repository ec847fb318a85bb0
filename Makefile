# make study : set up .venv, execute every notebook on the digits default, build the book
# make test  : set up .venv and run the tests
# make book  : build the published book from the committed mnist results (no training)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PROFILE ?= digits

.PHONY: study book test venv clean

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

study: venv
	$(PY) -m densitybench study --profile $(PROFILE)

book: venv
	$(PY) -m densitybench book --profile mnist

test: venv
	$(PY) -m pytest

clean:
	rm -rf _build book/executed
