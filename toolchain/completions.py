"""What a vLLM pod answers on its OpenAI API, simulated: the answer the local stack's `curl` gets back.

The shapes follow vLLM 0.14.0 (`vllm/entrypoints/openai/protocol.py`: CompletionResponse,
ChatCompletionResponse, ErrorResponse): the response names the engine's first served model name
(`serving_models.py`, `model_name`), a request for a name the engine does not serve is a 404 NotFoundError
on `model` (`serving_engine.py`, `_check_model`), and `finish_reason` is `length` when `max_tokens` ran out.
The text is made of words drawn from the prompt's digest, so one prompt always gets one answer.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

COMPLETIONS_PATH = "/v1/completions"
CHAT_PATH = "/v1/chat/completions"
DEFAULT_MAX_TOKENS = 16
SERVED_NAMES_HEADER = "x-simulated-served-model-names"
"""How the local gateway tells the simulator which pod it stands for: that pod's `--served-model-name` values,
comma-separated, read from the pod the stack created (a real pod knows them from its own arguments)."""
LORA_PREFIX = "lora:"
"""Marks a served name that is a LoRA adapter (`--lora-modules`): vLLM answers those with the adapter's own name
(vllm/entrypoints/openai/serving_models.py `model_name`: the LoRA request's name, else the first served name)."""
_WORDS = ("the", "model", "answers", "from", "a", "simulated", "engine", "behind", "its", "pod", "address",
          "through", "routes", "that", "the", "stack", "created")


class RequestError(ValueError):
    """A request vLLM would refuse: its HTTP status and OpenAI error body."""

    def __init__(self, status: int, err_type: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": err_type, "param": param, "code": status}}


def _prompt_of(path: str, request: dict[str, Any]) -> str:
    if path == CHAT_PATH:
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError(400, "BadRequestError", "messages: a non-empty list of chat messages is required",
                               "messages")
        return "\n".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
    prompt = request.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise RequestError(400, "BadRequestError", "prompt: a non-empty string is required", "prompt")
    return prompt


def _words(prompt: str, count: int) -> list[str]:
    digest = hashlib.sha256(prompt.encode()).digest()
    return [_WORDS[digest[i % len(digest)] % len(_WORDS)] for i in range(count)]


def answer(path: str, body: bytes, served_names: tuple[str, ...]) -> dict[str, Any]:
    """The response to a POST on `path` by an engine serving `served_names` (its --served-model-name list, then its
    LoRA adapters marked with LORA_PREFIX)."""
    try:
        request = json.loads(body or b"{}")
    except ValueError as error:
        raise RequestError(400, "BadRequestError", f"the body is not JSON: {error}") from error
    if not isinstance(request, dict):
        raise RequestError(400, "BadRequestError", "the body must be a JSON object")
    asked = request.get("model")
    adapters = {name.removeprefix(LORA_PREFIX) for name in served_names if name.startswith(LORA_PREFIX)}
    if asked not in served_names and asked not in adapters:
        raise RequestError(404, "NotFoundError", f"The model `{asked}` does not exist.", "model")
    prompt = _prompt_of(path, request)
    max_tokens = request.get("max_tokens") or DEFAULT_MAX_TOKENS
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise RequestError(400, "BadRequestError", f"max_tokens: {max_tokens!r}; give a positive integer",
                           "max_tokens")
    text = " ".join(_words(prompt, max_tokens))
    usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": max_tokens,
             "total_tokens": len(prompt.split()) + max_tokens}
    common = {"id": f"cmpl-{hashlib.sha256(prompt.encode()).hexdigest()[:16]}", "created": int(time.time()),
              "model": asked if asked in adapters else served_names[0], "usage": usage}
    if path == CHAT_PATH:
        return {**common, "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}]}
    return {**common, "object": "text_completion", "choices": [
        {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}]}
