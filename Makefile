# The two commands of the README: `make run` and `make test`. `make setup` prepares alone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
RASA_VENV := .venv-rasa
PIP_FLAGS := --disable-pip-version-check --quiet
PORT      ?=

.PHONY: help run setup test nlu-report screenshots clean

help:
	@echo "make run    — set up when needed, then serve on http://127.0.0.1:8080 (PORT=… to change)"
	@echo "make test   — the whole test suite (SQLite, and PostgreSQL where reachable)"
	@echo "make setup  — install, train the Rasa model if bot/rasa changed, migrate, load demo content"
	@echo "make nlu-report — cross-validate the NLU model and rewrite docs/nlu.md"
	@echo "make screenshots — rewrite docs/screenshots/*.png (the consoles on demo data, Debian's Chromium)"

# The server's environment: reinstalled only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	@test -x $(VENV)/bin/python || { py=$$(scripts/find-python.sh 3.11+) && echo "Creating $(VENV) with $$py" && "$$py" -m venv $(VENV); }
	$(VENV)/bin/pip install $(PIP_FLAGS) -e '.[postgres,test]'
	@touch $@

# The optional sentence-transformers backend, which `make test` covers (about 750 MB, 1–2 minutes).
# torch first and pinned to the CPU build, so that sentence-transformers cannot bring another;
# keep its version the same as the `st` extra's in pyproject.toml.
$(VENV)/.installed-st: $(VENV)/.installed
	$(VENV)/bin/pip install $(PIP_FLAGS) torch==2.13.0
	$(VENV)/bin/pip install $(PIP_FLAGS) -e '.[postgres,test,st]'
	@touch $@

# Rasa's own environment (Python 3.10): reinstalled only when its requirements change.
$(RASA_VENV)/.installed: bot/rasa/requirements.txt
	@test -x $(RASA_VENV)/bin/python || { py=$$(scripts/find-python.sh 3.10) && echo "Creating $(RASA_VENV) with $$py" && "$$py" -m venv $(RASA_VENV); }
	@echo "Installing Rasa into $(RASA_VENV) (takes a couple of minutes the first time) …"
	$(RASA_VENV)/bin/pip install $(PIP_FLAGS) -r bot/rasa/requirements.txt
	@touch $@

setup: $(VENV)/.installed $(RASA_VENV)/.installed
	@$(VENV)/bin/govchat setup

run: $(VENV)/.installed $(RASA_VENV)/.installed
	@exec $(VENV)/bin/govchat run $(if $(PORT),--port $(PORT))

test: $(VENV)/.installed $(VENV)/.installed-st $(RASA_VENV)/.installed
	@$(VENV)/bin/govchat rasa train
	$(VENV)/bin/python -m pytest

nlu-report: $(VENV)/.installed $(RASA_VENV)/.installed
	$(VENV)/bin/python bench/nlu_report.py

# Needs /usr/bin/chromium and, for Chinese text, fonts-noto-cjk (both installed by .ci/run).
screenshots: $(VENV)/.installed
	$(VENV)/bin/python scripts/screenshots.py

clean:
	rm -rf var/models var/rasa
