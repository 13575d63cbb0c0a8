"""The external backend: an OpenAI-compatible API through the official ``openai`` SDK.

The SDK's own retries are off (max_retries=0): the worker owns the one retry loop, with the taxonomy
deciding what is retryable. SDK exceptions propagate unchanged; worker.classification maps them.

Chat completions go through the client's documented ``post`` with the SDK's ChatCompletion as the answer
type, rather than ``chat.completions.create``: same request, headers, timeout, errors and typed answer,
without create()'s per-call pass over its TypedDict parameter types to transform a body that needs none
(ours is built from plain strings and numbers). That pass was a third of the SDK's CPU time per job.
"""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from worker.backends.base import BackendFailure, GenerationOutput
from worker.classification import Signal
from worker.sanitize import content_text, no_text_failure, refused_in_parts, usage_counts

_TEXT_PARAMS = ("temperature", "top_p", "seed")
_IMAGE_PARAMS = ("n", "size", "quality")


@dataclass
class OpenAIConfig:
    base_url: str = "https://api.openai.com/v1"
    api_key: str = field(default="", repr=False)
    timeout: float = 120.0  # ceiling per request; the job's remaining time lowers it
    connect_timeout: float = 10.0
    organization: str | None = None
    # "max_tokens" suits most OpenAI-compatible servers; OpenAI's newer models want "max_completion_tokens"
    max_tokens_param: str = "max_tokens"
    # "url" or "b64_json" for providers that accept response_format on images; None sends nothing
    image_response_format: str | None = None


class OpenAIBackend:
    """Thread-safe. Each job thread has a client of its own (kept for its later jobs): one shared client
    made the threads meet on its connection pool's lock, held while the pool checks every connection it
    has (a hundred at 100 in flight) on each request; that was the largest cost of a failing job.
    The clients share one TLS context: the CA store is loaded once, not ~20 ms and ~0.9 MB per thread."""

    name = "external"

    def __init__(self, config: OpenAIConfig, *, client: openai.OpenAI | None = None):
        self.config = config
        self._shared = client  # given (tests): used by every thread
        self._local = threading.local()
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None

    @property
    def client(self) -> openai.OpenAI:
        if self._shared is not None:
            return self._shared
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._new_client()
        return client

    def _new_client(self) -> openai.OpenAI:
        # built lazily: a worker without an API key still starts (it may run the internal backend only)
        with self._lock:
            if self._tls is None:
                self._tls = _http_library().create_ssl_context()  # what the SDK's own client would use
        timeout = self._timeout(self.config.timeout)
        return openai.OpenAI(
            base_url=self.config.base_url,
            api_key=self.config.api_key or "missing",  # the provider answers 401 → provider_auth alert
            organization=self.config.organization,
            timeout=timeout,
            max_retries=0,
            # the SDK's defaults (limits, redirects), as its own client gets them, with the shared context
            http_client=openai.DefaultHttpxClient(
                base_url=self.config.base_url, timeout=timeout, verify=self._tls
            ),
        )

    def _timeout(self, total: float) -> openai.Timeout:
        return openai.Timeout(total, connect=min(total, self.config.connect_timeout))

    def generate(self, job: Any, *, timeout: float) -> GenerationOutput:
        budget = min(timeout, self.config.timeout)
        if budget <= 0:
            raise BackendFailure(Signal(kind="deadline", message="no time left before the job's deadline"))
        if job.task == "text":
            return self._text(job, budget)
        if job.task == "image":
            return self._image(job, budget)
        raise BackendFailure(Signal(kind="other", message=f"unsupported task {job.task!r}"))

    def _text(self, job: Any, budget: float) -> GenerationOutput:
        params = job.params or {}
        messages = []
        if params.get("system"):
            messages.append({"role": "system", "content": params["system"]})
        messages.append({"role": "user", "content": job.prompt})
        extra: dict[str, Any] = {k: params[k] for k in _TEXT_PARAMS if params.get(k) is not None}
        if params.get("max_tokens") is not None:
            extra[self.config.max_tokens_param] = params["max_tokens"]
        completion = self.client.post(
            "/chat/completions",
            cast_to=ChatCompletion,
            body={"model": job.model, "messages": messages, **extra},
            options={"timeout": self._timeout(budget)},
        )
        if not completion.choices:
            raise BackendFailure(Signal(kind="other", message="the provider answered without choices"))
        choice = completion.choices[0]
        refusal = getattr(choice.message, "refusal", None) or refused_in_parts(choice.message.content)
        if choice.finish_reason == "content_filter" or (refusal and not content_text(choice.message.content)):
            # the provider's filter stopped the answer: the same verdict as a rejected prompt
            raise BackendFailure(
                Signal(
                    kind="http",
                    status=200,
                    code="content_policy_violation",
                    message=f"finish_reason={choice.finish_reason}; refusal={bool(refusal)}",
                )
            )
        content = choice.message.content
        if content is None:
            raise BackendFailure(
                Signal(kind="other", message=f"empty answer (finish_reason={choice.finish_reason})")
            )
        # the SDK does not check the answer's types: a list of parts, a number... come through as sent;
        # the text is cleaned of what Odoo refuses (NUL, lone surrogates) with the rest of the outcome
        text = content_text(content)
        if text is None:
            raise no_text_failure(content)
        return GenerationOutput(output=text, output_url=None, usage=_usage(completion.usage))

    def _image(self, job: Any, budget: float) -> GenerationOutput:
        params = job.params or {}
        extra: dict[str, Any] = {k: params[k] for k in _IMAGE_PARAMS if params.get(k) is not None}
        if self.config.image_response_format:
            extra["response_format"] = self.config.image_response_format
        answer = self.client.images.generate(
            model=job.model, prompt=job.prompt, timeout=self._timeout(budget), **extra
        )
        urls = [_image_url(item) for item in (answer.data or [])]
        urls = [u for u in urls if u]
        if not urls:
            raise BackendFailure(Signal(kind="other", message="the provider answered without an image"))
        usage = _usage(getattr(answer, "usage", None))
        usage["images"] = len(urls)
        # the callback carries one output_url; several images travel as a JSON list in output
        return GenerationOutput(
            output=json.dumps(urls) if len(urls) > 1 else None, output_url=urls[0], usage=usage
        )


def _http_library():
    """The HTTP client library under this openai SDK: httpx2 in recent releases, httpx before."""
    try:
        import httpx2

        return httpx2
    except ImportError:  # pragma: no cover - older SDKs
        import httpx

        return httpx


def _image_url(item: Any) -> str | None:
    url, b64 = getattr(item, "url", None), getattr(item, "b64_json", None)
    if url and isinstance(url, str):
        return url
    if b64 and isinstance(b64, str):
        return f"data:image/png;base64,{b64}"
    return None


def _usage(usage: Any) -> dict[str, int]:
    """The integer counters of the provider's usage object (token counts) that Odoo takes; nested
    details and values out of the contract's range are dropped."""
    if usage is None:
        return {}
    data = usage.model_dump() if hasattr(usage, "model_dump") else usage
    return usage_counts(data)
