# Frontdesk: `make run` starts a demo server, `make test` runs the whole suite.
# Both create their own virtualenv in .venv; nothing else needs installing by hand.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

export FRONTDESK_DATA_DIR ?= var

.PHONY: run test lint typecheck pytest install clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/frontdesk migrate
	$(BIN)/frontdesk demo
	@echo ""
	@echo "Frontdesk is starting on http://$(HOST):$(PORT)  (API docs: http://$(HOST):$(PORT)/api/docs)"
	@echo "Demo login: admin@demo.frontdesk.test / frontdesk-demo"
	@echo "An API token: $$($(BIN)/frontdesk admin create-token --workspace Demo --email admin@demo.frontdesk.test --name make-run | tail -n 1)"
	$(BIN)/frontdesk serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# --- web: the agent workspace (src/frontdesk/web) -------------------------------------
# `translations` compiles the message catalogs (.po -> .mo; the app also compiles a
# missing or stale .mo in memory, so a fresh clone works without it). `messages` re-extracts
# the UI strings after templates change and merges them into every catalog for translators.
# `browser` installs Debian's Chromium for the Playwright tests (no browser download).
# `axe` installs the axe-core accessibility engine from npm into .cache/ (git-ignored) for
# tests/web/test_accessibility_browser.py; the app itself never loads it.
WEB := src/frontdesk/web
CATALOGS := $(WEB)/translations
AXE := .cache/axe-core/node_modules/axe-core/axe.min.js

.PHONY: translations messages browser screenshots axe

translations: $(STAMP)
	$(BIN)/pybabel compile --statistics -D messages -d $(CATALOGS)

messages: $(STAMP)
	$(BIN)/pybabel extract -F $(WEB)/babel.cfg -k N_ --no-location --sort-output \
		--project Frontdesk --copyright-holder "Frontdesk contributors" \
		-o $(CATALOGS)/messages.pot $(WEB)
	$(BIN)/pybabel update --no-fuzzy-matching --ignore-obsolete -D messages \
		-i $(CATALOGS)/messages.pot -d $(CATALOGS)

browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# Without npm or a network the rest of the suite still runs: the accessibility tests then
# fail under CI=1 (skip loudly otherwise) and say why.
$(AXE):
	npm install --prefix .cache/axe-core --no-save --no-package-lock --no-audit --no-fund axe-core@4 \
		|| echo "axe-core could not be installed from npm: the accessibility tests will not run"

axe: $(AXE)

# The IMAP tests start a private Dovecot of their own (tests/dovecot.py); only the
# package is needed. policy-rc.d or not, its system service is never used.
.PHONY: imap-server
imap-server:
	test -x /usr/sbin/dovecot || (apt-get update && apt-get install -y dovecot-imapd)

# Screenshots of the demo workspace for the README and docs/screenshots/ (needs fonts for
# Chinese and Arabic, which Chromium does not bring).
screenshots: $(STAMP) translations browser
	fc-list | grep -q "Noto Sans CJK" || (apt-get update && apt-get install -y fonts-noto-cjk fonts-noto-core)
	$(BIN)/python tests/web/make_screenshots.py

pytest: browser axe translations imap-server
run: translations
