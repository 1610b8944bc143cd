"""What we tell vLLM and what we expect from it, checked against vLLM's own source at the pinned version:
every `vllm serve` flag we pass is one of its engine or frontend arguments, every label value the metrics
simulator emits is one vLLM emits, and every vLLM metric our dashboards, alerts and autoscalers read is one
it defines."""

from __future__ import annotations

import pytest
from llmplane.components.serving.engine_args import EngineSettings, serve_args
from llmplane.monitoring import vllm_metrics

from tests import vllm_wheel

ENGINE_ARGS = "vllm/engine/arg_utils.py"
FRONTEND_ARGS = "vllm/entrypoints/openai/cli_args.py"


def test_every_serve_flag_is_a_vllm_argument():
    engine = EngineSettings(tensor_parallel_size=2, gpu_memory_utilization=0.85, max_model_len=4096, max_num_seqs=32,
                    max_num_batched_tokens=8192, quantization="fp8", enable_prefix_caching=True)
    _model, *args = serve_args("llama-3-8b", "1.1.0", engine)
    flags = [a[2:].split("=")[0].replace("-", "_") for a in args if a.startswith("--")]
    known = (vllm_wheel.dataclass_fields(ENGINE_ARGS, "EngineArgs")
             | vllm_wheel.dataclass_fields(FRONTEND_ARGS, "FrontendArgs"))
    assert flags and not set(flags) - known, f"not vLLM {vllm_wheel.VLLM_VERSION} arguments: {set(flags) - known}"


def test_the_simulator_emits_only_finish_reasons_vllm_emits():
    emitted = set(vllm_metrics.FINISHED_REASONS)
    vllms = set(vllm_wheel.constant("vllm/v1/engine/__init__.py", "FINISH_REASON_STRINGS"))
    assert emitted == vllms, f"simulator {sorted(emitted)} vs vLLM {vllm_wheel.VLLM_VERSION} {sorted(vllms)}"


@pytest.mark.parametrize("metric", vllm_metrics.VLLM, ids=lambda m: m.name)
def test_every_vllm_metric_we_read_is_defined_by_vllm(metric):
    source = vllm_wheel.source("vllm/v1/metrics/loggers.py")
    assert f'"{metric.name.removesuffix("_total")}' in source, f"{metric.name} is not defined by vLLM"
