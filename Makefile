# llmplane — everyday commands (GNU make).
#   make up              deploy the local stack: manifests rendered to build/local/
#   make test            the test suite (PYTEST_ARGS="-k engine" to pick tests)
#   make plan ENV=prod   offline plan of a cloud environment (no credentials needed)
# The first run creates .venv and builds the Pulumi CLI into .tools/bin (minutes).

VENV ?= .venv
PYTHON := $(VENV)/bin/python
STACK := local
RENDER_DIR := build/local
ENV ?= prod
CHECKOV_VERSION := 3.3.30
CHECKOV := .tools/checkov/bin/checkov
ACTIONLINT_VERSION := v1.7.10
ACTIONLINT := .tools/bin/actionlint

# Go's official tarball installs to /usr/local/go, which not every shell puts on PATH.
export PATH := $(CURDIR)/.tools/bin:$(PATH)$(if $(wildcard /usr/local/go/bin/go),:/usr/local/go/bin)
export PULUMI_BACKEND_URL ?= file://$(CURDIR)/.state
# The local stack's secrets are encrypted with this well-known passphrase: it
# protects nothing and is for the local stack only. Set your own for any other.
export PULUMI_CONFIG_PASSPHRASE ?= llmplane-local
export PULUMI_SKIP_UPDATE_CHECK := true
# Offline: a missing plugin is an error, not a download attempt.
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION := true

POLICY_CONFIG := .state/policy-config.$(STACK).json
POLICY_PACK := --policy-pack policies --policy-pack-config $(POLICY_CONFIG)

.PHONY: up test plan toolchain

up: toolchain
	@$(VENV)/bin/llmplane validate $(STACK)
	@mkdir -p .state
	@$(VENV)/bin/llmplane policy-config $(STACK) --out $(POLICY_CONFIG)
	@pulumi stack select --create $(STACK) >/dev/null
	@pulumi up --stack $(STACK) --yes --skip-preview $(POLICY_PACK)
	@$(PYTHON) -m toolchain.summary --stack $(STACK) --render-dir $(RENDER_DIR)

test: toolchain $(CHECKOV) $(ACTIONLINT)
	@$(PYTHON) -m pytest $(PYTEST_ARGS)

plan: $(VENV)/.installed
	@$(VENV)/bin/llmplane plan $(ENV)

# checkov pins libraries the Pulumi SDKs cannot share, so it gets a virtualenv of its own.
$(CHECKOV):
	@echo "checkov: installing checkov==$(CHECKOV_VERSION) into .tools/checkov"
	@python3 -m venv .tools/checkov
	@.tools/checkov/bin/pip install --disable-pip-version-check -q checkov==$(CHECKOV_VERSION)

# actionlint validates .github/workflows; built from the Go module proxy like the Pulumi CLI.
$(ACTIONLINT):
	@echo "actionlint: building $(ACTIONLINT_VERSION) from the Go module proxy into .tools/bin"
	@GOBIN=$(CURDIR)/.tools/bin go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

toolchain: $(VENV)/.installed
	@$(PYTHON) -m toolchain.bootstrap

# Reinstall only when the dependencies may have changed.
$(VENV)/.installed: pyproject.toml
	@test -x $(PYTHON) || { echo "venv: creating $(VENV)"; python3 -m venv $(VENV); }
	@echo "venv: installing llmplane with its dependencies (pip install -e '.[test]')"
	@$(PYTHON) -m pip install --disable-pip-version-check -e '.[test]' > $(VENV)/pip-install.log 2>&1 \
		|| { tail -n 30 $(VENV)/pip-install.log; exit 1; }
	@touch $@
