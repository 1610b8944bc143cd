"""What one replica sustains, derived from the model's spec: its profile moved to another GPU, tensor parallelism
and engine features. The one place the planner and the recommender turn a spec `Model` into replica rates.

The spec's `performance` is taken as the replica on its pool's GPU at the engine's tensor parallelism with a plain
engine (KV cache in the model's dtype, no offload, no LoRA, no speculative decoding); every other configuration is
derived from it:

- Sequences held. A replica holds as many typical sequences as its KV cache has room for: the measured count
  scaled by the KV tokens of the configuration over those of the plain engine (tokens = `Model.kv_room_bytes` /
  `Model.kv_bytes_per_token`, per GPU), capped by engine.maxNumSeqs. fp8 halves the bytes per token (twice the
  sequences); LoRA slots and a draft model take room from it (`Model.extra_gpu_bytes`: fewer). A configuration
  whose KV cache cannot hold one maxModelLen sequence does not start (vLLM's `check_enough_kv_cache_memory`
  refuses it).
- Decode. A decode step is memory bound: each GPU reads its shard of the weights and the batch's KV cache once
  per step (Kwon et al., "Efficient Memory Management for Large Language Model Serving with PagedAttention", SOSP
  2023, §2.3). The measured step (sequences / decode rate) gives the share of bandwidth the reference reaches; the
  same share of another GPU's bandwidth (`facts.gpus.HBM_GB_PER_SECOND`) times the configuration's bytes per step
  gives its step. A step also cannot be shorter than its tokens at the compute-bound prefill rate. Tensor
  parallel communication is not charged (errs fast).
- Prefill. Compute bound: dense BF16 throughput times the GPUs it shards over (`prefill_scale`).
- Speculative decoding. Each step drafts k tokens and verifies them in one pass; with acceptance rate a the
  expected tokens per step are (1 - a^(k+1)) / (1 - a), and the k draft steps cost c each, c the draft's cost
  relative to the model's step (Leviathan, Kalman and Matias, "Fast Inference from Transformers via Speculative
  Decoding", ICML 2023, eq. 1 and Theorem 3.8). A memory-bound draft costs its size over the model's
  (c = draft bytes / weight bytes); ngram looks the draft up in the prompt on the CPU (c = 0, vLLM's
  `vllm/v1/spec_decode/ngram_proposer.py`). The verifying pass computes k + 1 tokens per sequence.
- KV offload. An upper bound: sequences beyond the GPU's room wait in host memory and take turns, read back
  instead of recomputed when resumed (the vLLM blog, "Inside vLLM's New KV Offloading Connector", 2026; LMCache,
  Liu et al., arXiv:2510.09665). The replica holds the sequences that GPU plus host memory have room for, and the
  decode throughput stays the GPU batch's: each held sequence decodes slower, new ones start sooner. Transfers are
  not charged, so this errs optimistic; the recommender never proposes offload.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmplane.facts.gpus import DENSE_BF16_TFLOPS, HBM_GB_PER_SECOND
from llmplane.spec.models import Model


class DoesNotFit(ValueError):
    """A configuration vLLM would refuse to start: the KV cache left beside the weights holds no maxModelLen
    sequence."""


@dataclass(frozen=True)
class Rates:
    """What one replica sustains: the simulator's per-replica figures."""

    prefill_tokens_per_second: float
    decode_tokens_per_second: float
    """Output tokens per second summed over the sequences held."""
    max_concurrent_sequences: int
    kv_tokens: float
    """Tokens the GPUs' KV cache holds."""


def prefill_scale(gpu_from: str, gpu_to: str, tp_from: int = 1, tp_to: int = 1) -> float:
    """How much faster a replica prefills on `gpu_to` at tensor parallelism `tp_to` than on `gpu_from` at
    `tp_from`, at best: prefill is compute bound, so dense BF16 throughput (`facts.gpus.DENSE_BF16_TFLOPS`) times
    the GPUs it shards over."""
    return DENSE_BF16_TFLOPS[gpu_to] / DENSE_BF16_TFLOPS[gpu_from] * tp_to / tp_from


def plain(model: Model) -> Model:
    """The model with none of the engine features that change a replica's rates: what `performance` describes."""
    engine = model.engine.model_copy(update={"kv_cache_dtype": "auto", "kv_offload": None, "lora": None,
                                             "speculative": None})
    return model.model_copy(update={"engine": engine})


def kv_tokens(model: Model, gpu_type: str) -> float:
    """Tokens the KV cache of one replica holds on `gpu_type` (0 when the weights leave no room)."""
    return max(0.0, model.kv_room_bytes(gpu_type)) / model.kv_bytes_per_token()


def _step_bytes(model: Model, sequences: int, tokens_per_sequence: float) -> float:
    """Bytes each GPU reads in one decode step: its shard of the weights and features, and the batch's KV cache."""
    resident = (model.weight_bytes() + model.extra_gpu_bytes()) / model.engine.tensor_parallel_size
    return resident + sequences * tokens_per_sequence * model.kv_bytes_per_token()


def accepted_per_step(acceptance_rate: float, drafted: int) -> float:
    """Expected tokens a speculative step emits per sequence (Leviathan et al. 2023, eq. 1)."""
    a = acceptance_rate
    return (1 - a ** (drafted + 1)) / (1 - a)


def replica_rates(spec_model: Model, spec_gpu: str, model: Model | None = None, gpu_type: str | None = None) -> Rates:
    """The rates of `model` (default: the spec's, features included) on `gpu_type` (default: the pool's), derived
    from `spec_model`'s performance on `spec_gpu` as the module docstring says. Raises DoesNotFit."""
    model = model or spec_model
    gpu_type = gpu_type or spec_gpu
    perf = spec_model.performance
    reference = plain(spec_model)
    ref_tokens = kv_tokens(reference, spec_gpu)
    if ref_tokens <= 0:
        raise DoesNotFit(f"the weights leave no KV cache on {spec_gpu} at tensor parallelism "
                         f"{reference.engine.tensor_parallel_size}, where `performance` is measured")
    engine = model.engine
    tokens = kv_tokens(model, gpu_type)
    if tokens < engine.max_model_len:
        raise DoesNotFit(f"{tokens:,.0f} KV tokens on {gpu_type} at tensor parallelism "
                         f"{engine.tensor_parallel_size}: fewer than one maxModelLen ({engine.max_model_len}) sequence")
    n0 = perf.max_concurrent_sequences
    per_sequence = ref_tokens / n0
    sequences = max(1, min(engine.max_num_seqs, math.floor(n0 * tokens / ref_tokens)))
    prefill = perf.prefill_tokens_per_second * prefill_scale(
        spec_gpu, gpu_type, reference.engine.tensor_parallel_size, engine.tensor_parallel_size)
    tau0 = n0 / perf.decode_tokens_per_second
    memory = tau0 * (_step_bytes(model, sequences, per_sequence) / _step_bytes(reference, n0, per_sequence)) * (
        HBM_GB_PER_SECOND[spec_gpu] / HBM_GB_PER_SECOND[gpu_type])
    spec = engine.speculative
    drafted = spec.num_speculative_tokens if spec else 0
    step = max(memory, sequences * (drafted + 1) / prefill)
    emitted = 1.0
    if spec:
        cost = spec.draft.size_mib * 2**20 / model.weight_bytes() if spec.draft and spec.method != "ngram" else 0.0
        step += drafted * cost * memory
        emitted = accepted_per_step(spec.acceptance_rate, drafted)
    decode = perf.decode_tokens_per_second * (sequences / n0) * (tau0 / step) * emitted
    held = sequences
    if engine.kv_offload:
        host_tokens = engine.kv_offload.cpu_gib * 2**30 / (model.kv_bytes_per_token() * engine.tensor_parallel_size)
        held = max(sequences, min(engine.max_num_seqs, math.floor(sequences * (tokens + host_tokens) / tokens)))
    return Rates(prefill, decode, held, tokens)
