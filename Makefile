# llmplane — everyday commands (GNU make).
#   make up              deploy the local stack to the embedded cluster (started when not running)
#   make down            stop the embedded cluster (its data stays in .state/cluster)
#   make cluster-status  what runs, and where the kubeconfig is
#   make render          the local stack's manifests in build/local/, for GitOps (own state in .state/render)
#   make test            the whole test suite, with its own set-up (PYTEST_ARGS="-k engine" to pick tests)
#   make plan ENV=prod   offline plan of a cloud environment (no credentials needed)
#   make docs            the components' reference in build/docs/, checked with the README's picture and links
# The first run creates .venv and builds the Go tools into ~/.cache/llmplane (minutes; reused by every clone).

VENV ?= .venv
PYTHON := $(VENV)/bin/python
LLMPLANE := $(VENV)/bin/llmplane
STACK := local
RENDER_DIR := build/local
CLUSTER_DIR := .state/cluster
RENDER_STATE := .state/render
ENV ?= prod

# Names reach the shell: accept only an environment that has a file, as one word.
ifneq ($(words $(STACK)) $(words $(ENV)),1 1)
$(error STACK and ENV are one environment name each, e.g. STACK=local ENV=prod)
endif
ifeq ($(wildcard environments/Pulumi.$(STACK).yaml),)
$(error STACK=$(STACK): there is no environments/Pulumi.$(STACK).yaml; use one of local, dev, staging, prod)
endif
ifeq ($(wildcard environments/Pulumi.$(ENV).yaml),)
$(error ENV=$(ENV): there is no environments/Pulumi.$(ENV).yaml; use one of local, dev, staging, prod)
endif

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
POLICY_PACK := --policy-pack policies --policy-pack-config '$(POLICY_CONFIG)'

.PHONY: up down cluster-status render test test-setup plan toolchain docs

# One set-up for both commands (toolchain/prerequisites.py knows every external tool and which target runs it).
SETUP_TARGET := $(if $(filter test test-setup,$(MAKECMDGOALS)),test,up)

# `pulumi up` previews first, with the policy pack: a mandatory violation stops it before anything is written.
up: toolchain
	@$(LLMPLANE) validate '$(STACK)'
	@$(LLMPLANE) cluster up --environment '$(STACK)' --state-dir '$(CLUSTER_DIR)'
	@mkdir -p .state
	@$(LLMPLANE) policy-config '$(STACK)' --out '$(POLICY_CONFIG)'
	@pulumi stack select --create '$(STACK)' >/dev/null
	@$(PYTHON) -m llmplane.stacks.local.safe_up --stack '$(STACK)' -- $(POLICY_PACK)
	@$(LLMPLANE) cluster up --environment '$(STACK)' --state-dir '$(CLUSTER_DIR)' >/dev/null  # KEDA, now that its CRDs exist
	@$(PYTHON) -m llmplane.stacks.local.summary --stack '$(STACK)' --kubeconfig '$(CLUSTER_DIR)/kubeconfig'

down: $(VENV)/.installed
	@$(LLMPLANE) cluster down --state-dir '$(CLUSTER_DIR)'

cluster-status: $(VENV)/.installed
	@$(LLMPLANE) cluster status --state-dir '$(CLUSTER_DIR)'

render: toolchain
	@$(LLMPLANE) validate '$(STACK)'
	@mkdir -p .state
	@$(LLMPLANE) policy-config '$(STACK)' --out '$(POLICY_CONFIG)'
	@$(PYTHON) -m llmplane.stacks.local.render_config --stack '$(STACK)' --render-dir '$(RENDER_DIR)' \
		--out '$(RENDER_STATE)/Pulumi.$(STACK).yaml'
	@PULUMI_BACKEND_URL='file://$(CURDIR)/$(RENDER_STATE)' pulumi stack select --create '$(STACK)' >/dev/null
	@PULUMI_BACKEND_URL='file://$(CURDIR)/$(RENDER_STATE)' $(PYTHON) -m llmplane.stacks.local.safe_up --stack '$(STACK)' -- \
		--config-file '$(RENDER_STATE)/Pulumi.$(STACK).yaml' $(POLICY_PACK)
	@PULUMI_BACKEND_URL='file://$(CURDIR)/$(RENDER_STATE)' $(PYTHON) -m llmplane.stacks.local.summary --stack '$(STACK)' \
		--render-dir '$(RENDER_DIR)'

test: test-setup toolchain
	@$(PYTHON) -m pytest $(PYTEST_ARGS)

# What the tests run against: what `make up` runs, and Debian's promtool, alertmanager and lua, VictoriaLogs,
# actionlint, the endpoint picker, the LogQL grammar from npm, vLLM's source of every supported release (read as
# text) and checkov; each installed or built once and cached in ~/.cache/llmplane.
test-setup: $(VENV)/.installed
	@$(PYTHON) -m llmplane.toolchain.prerequisites install test

docs: $(VENV)/.installed
	@$(PYTHON) -m llmplane.toolchain.docs --out build/docs

plan: $(VENV)/.installed
	@$(LLMPLANE) plan '$(ENV)'

# Everything the local stack runs (Prometheus, the cluster's binaries, KEDA, the Pulumi toolchain), checked
# first and then installed or built, once.
toolchain: $(VENV)/.installed
	@$(PYTHON) -m llmplane.toolchain.prerequisites install up
	@$(PYTHON) -m llmplane.toolchain.bootstrap

# Reinstall only when the dependencies may have changed.
$(VENV)/.installed: pyproject.toml
	@python3 -m llmplane.toolchain.prerequisites announce $(SETUP_TARGET)
	@test -x $(PYTHON) || { echo "venv: creating $(VENV)"; python3 -m venv $(VENV); }
	@echo "venv: installing llmplane with its dependencies (pip install -e '.[test]')"
	@$(PYTHON) -m pip install --disable-pip-version-check -e '.[test]' > $(VENV)/pip-install.log 2>&1 \
		|| { tail -n 30 $(VENV)/pip-install.log; exit 1; }
	@touch $@
