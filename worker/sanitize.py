"""What a provider answered, made into values Odoo's callback contract takes, whatever it was.

Odoo reads a callback as strict JSON (addons/ai_generation/pure/validation.py) and then checks it
against schemas/callback_*.json: no NUL and no lone surrogate in any string (PostgreSQL stores neither),
no integer beyond 2**53 - 1, the declared types. A body it refuses is refused for good (400), so the
outcome would be dead-lettered and the request left running until Odoo's deadline cron fails it: the
worker cleans the provider's values where it builds the bodies instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from worker.backends.base import BackendFailure, GenerationOutput
from worker.classification import Signal

MAX_SAFE_INTEGER = 2**53 - 1  # I-JSON: the largest integer every JSON reader holds exactly
REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
_TEXT_PARTS = ("text", "output_text")  # chat completions' part type; the Responses API's


def clean_text(text: str) -> str:
    """``text`` with NUL and lone surrogates replaced by U+FFFD (a surrogate pair becomes its character)."""
    if text.isascii():  # the usual case: one fast pass, no surrogate possible
        return text.replace("\x00", REPLACEMENT) if "\x00" in text else text
    if _SURROGATE.search(text):
        # UTF-16 joins a pair split into two code points and marks each lone one with U+FFFD
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text.replace("\x00", REPLACEMENT) if "\x00" in text else text


def content_text(content: Any) -> str | None:
    """The text of a chat message's content: a string as is, a list of content parts as its text parts
    joined (some OpenAI-compatible servers answer so), None as ""; None for anything without text."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = [_part_text(part) for part in content]
        texts = [t for t in texts if t is not None]
        return "".join(texts) if texts else None
    return None


def _part_text(part: Any) -> str | None:
    if isinstance(part, str):
        return part
    if (
        isinstance(part, Mapping)
        and part.get("type", "text") in _TEXT_PARTS
        and isinstance(part.get("text"), str)
    ):
        return part["text"]
    return None


def refused_in_parts(content: Any) -> bool:
    """Whether a list of content parts holds the model's refusal (a part of type "refusal"): the same
    verdict as the message's own refusal field, not an answer without text."""
    return isinstance(content, list) and any(
        isinstance(part, Mapping) and part.get("type") == "refusal" for part in content
    )


def usage_counts(usage: Any) -> dict[str, int]:
    """The usage counters Odoo takes: integers in 0..2**53-1 under clean names; others are dropped
    (a counter is worth less than the result it would cost)."""
    if not isinstance(usage, Mapping):
        return {}
    return {
        key: value
        for key, value in usage.items()
        if isinstance(key, str)
        and key
        and clean_text(key) == key
        and isinstance(value, int)
        and not isinstance(value, bool)
        and 0 <= value <= MAX_SAFE_INTEGER
    }


NO_TEXT = "the provider's answer had no text"


def no_text_failure(value: Any) -> BackendFailure:
    """A provider fault, not the user's: the taxonomy's "unknown" row (system side, retried once)."""
    return BackendFailure(Signal(kind="other", message=f"{NO_TEXT} ({type(value).__name__})"))


def checked_output(output: Any) -> GenerationOutput:
    """A backend's output as the result callback may carry it: text cleaned, output_url only a
    non-empty string, usage within the contract. An output that is no text is a BackendFailure."""
    if not isinstance(output, GenerationOutput):
        raise no_text_failure(output)
    text = output.output
    if text is not None and not isinstance(text, str):
        raise no_text_failure(text)
    url = output.output_url if isinstance(output.output_url, str) and output.output_url else None
    if text is None and url is None and output.output_url is not None:
        raise no_text_failure(output.output_url)  # an output_url that is no URL, and nothing else
    return GenerationOutput(
        output=None if text is None else clean_text(text),
        output_url=None if url is None else clean_text(url),
        usage=usage_counts(output.usage),
    )
