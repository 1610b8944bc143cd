"""Entry point the engine runs (`python -m pulumi.policy <engine> policies/`): serve the llmplane pack.

    llmplane policy-config prod --out build/policy-prod.json
    pulumi preview --stack prod --policy-pack policies --policy-pack-config build/policy-prod.json

Without a config file every policy is advisory; the file sets each policy's level for the environment.
"""

import sys
from pathlib import Path

# The engine runs this folder as a script, which puts the folder itself first on sys.path: its modules
# (platform.py, config.py, ...) would shadow the standard library's. Import them as the `policies` package
# from the project root instead, whether or not the project is installed.
_PACK = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _PACK]
if str(_PACK.parent) not in sys.path:
    sys.path.insert(0, str(_PACK.parent))

from llmplane.policies.pack import PACK_NAME, build_policies  # noqa: E402
from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

PolicyPack(
    name=PACK_NAME,
    enforcement_level=EnforcementLevel.ADVISORY,
    policies=build_policies(),
    description="llmplane guardrails for LLM serving on Kubernetes, AWS and GCP; mandatory in staging and prod.",
)
