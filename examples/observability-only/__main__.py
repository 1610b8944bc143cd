"""llmplane's monitoring stack alone, for a cluster that already serves vLLM some other way.

It installs kube-prometheus-stack (with the vLLM dashboards), Loki on the cluster's disks, Alloy shipping pod
logs, the DCGM exporter on GPU nodes, and the SLO alerts: TTFT and availability burn rates, holding every model
to the SLO given here.
"""

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
from llmplane.components.observability.stack import ObservabilityArgs, ObservabilityStack
from llmplane.monitoring.rules import Slo

config = pulumi.Config()
provider = k8s.Provider("cluster", kubeconfig=pulumi.Output.secret(
    Path(config.require("kubeconfigPath")).expanduser().read_text()))
slo = Slo(ttft_seconds=config.require_float("ttftSeconds"), ttft_objective=0.99, availability_objective=0.995)
stack = ObservabilityStack("monitoring", ObservabilityArgs(
    cluster_name="gpu-cluster",
    region="site",
    slos={},
    default_slo=slo,
    environment="demo",
    tags={"owner": "platform"},
    log_retention_days=config.require_int("logRetentionDays"),
), opts=pulumi.ResourceOptions(provider=provider))

pulumi.export("namespace", stack.namespace)
