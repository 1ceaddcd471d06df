# The two set-up commands of the README: `make serve` and `make test`.
PYTHON ?= python3

.PHONY: install serve test services lint

install:
	PYTHON=$(PYTHON) bash scripts/install.sh

## Start the API and its dashboard on the embedded default (SQLite ./mixopt.db, in-process jobs).
serve: install
	mixopt serve

services:
	bash scripts/services.sh

## Install everything, start PostgreSQL and Redis if needed, run the whole test suite.
test: install services
	$(PYTHON) -m pytest -q -p no:cacheprovider

lint:
	ruff check mixing service workers runtables tests bench client
