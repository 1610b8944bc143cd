"""vLLM running: on a GPU machine (where the `vllm` package with its CUDA wheels is installed), its own argument
parser accepts our `vllm serve` command line and a tiny model serves /health, /v1/completions and every metric
our dashboards, alerts and autoscalers read. Without a GPU both skip with the reason; the same facts are checked
everywhere against vLLM's source in tests/test_vllm_source.py.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from llmplane.components.serving.engine_args import EngineSettings, serve_args
from llmplane.monitoring import vllm_metrics


def _gpu_reason() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU on this machine (nvidia-smi not found)"
    if subprocess.run(["nvidia-smi", "-L"], capture_output=True, check=False).returncode != 0:
        return "nvidia-smi found no usable GPU"
    return None


needs_gpu = pytest.mark.skipif(_gpu_reason() is not None, reason=_gpu_reason() or "")


def _parser():
    from vllm.entrypoints.openai.cli_args import make_arg_parser

    try:
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError:
        from vllm.utils import FlexibleArgumentParser
    return make_arg_parser(FlexibleArgumentParser())


@needs_gpu
def test_vllms_own_parser_accepts_our_serve_arguments():
    engine = EngineSettings(tensor_parallel_size=2, gpu_memory_utilization=0.85, max_model_len=4096, max_num_seqs=32,
                    max_num_batched_tokens=8192, quantization="fp8", enable_prefix_caching=True)
    model_dir, *flags = serve_args("llama-3-8b", "1.1.0", engine)
    parsed = _parser().parse_args(["--model", model_dir, *flags])
    assert parsed.served_model_name == ["llama-3-8b:1.1.0", "llama-3-8b"]
    assert (parsed.tensor_parallel_size, parsed.max_model_len, parsed.max_num_seqs) == (2, 4096, 32)
    assert parsed.max_num_batched_tokens == 8192
    assert parsed.gpu_memory_utilization == 0.85 and parsed.quantization == "fp8"
    assert parsed.enable_prefix_caching is True


def _tiny_model(path: Path) -> None:
    """A randomly initialised two-layer Llama and a word-level tokenizer, built locally (no hub download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", *[f"w{i}" for i in range(509)]]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>",
                            eos_token="</s>").save_pretrained(path)
    config = LlamaConfig(vocab_size=len(words), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256)
    LlamaForCausalLM(config).save_pretrained(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_gpu
def test_a_tiny_model_serves_health_completions_and_our_metrics(tmp_path):
    _tiny_model(tmp_path / "model")
    port = _free_port()
    engine = EngineSettings(max_model_len=256, max_num_seqs=8, gpu_memory_utilization=0.3)
    _, *flags = serve_args("tiny", "0.0.1", engine)
    flags[flags.index("--port") + 1] = str(port)
    server = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model",
                               str(tmp_path / "model"), *flags, "--host", "127.0.0.1", "--enforce-eager"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{base}/health", timeout=2).status == 200:
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read() if server.stdout else "vllm exited"
                time.sleep(2)
        else:
            pytest.fail("vLLM did not become healthy in 10 minutes")
        body = json.dumps({"model": "tiny:0.0.1", "prompt": "w1 w2 w3", "max_tokens": 8}).encode()
        request = urllib.request.Request(f"{base}/v1/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
        assert answer["choices"][0]["text"] is not None
        metrics = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
        missing = [m.name for m in vllm_metrics.VLLM if m.name not in metrics]
        assert not missing, f"metrics our dashboards/alerts/autoscalers use but vLLM does not expose: {missing}"
    finally:
        server.terminate()
        server.wait(timeout=60)
