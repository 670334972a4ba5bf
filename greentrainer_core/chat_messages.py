"""What a chat row's ``messages`` must look like (OpenAI's fine-tuning chat format). Torch-free:
the API checks uploads with it, the worker's loader (`greentrainer_core.chat`) the same way."""

from __future__ import annotations

from typing import Any

ROLES = ("system", "user", "assistant")
MESSAGE_KEYS = frozenset({"role", "content", "name", "weight"})  # OpenAI's per-message keys


def message_problem(messages: Any) -> str | None:
    """What is wrong with a ``messages`` value, in words, or None. Shared with the API's upload
    check, so that the worker accepts exactly what the upload accepted."""
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list"
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages[{i}] must be an object"
        unknown = sorted(set(message) - MESSAGE_KEYS)
        if unknown:
            return f"messages[{i}] has unknown key(s) {unknown}"
        role = message.get("role")
        if role not in ROLES:
            return f"messages[{i}].role must be one of {', '.join(ROLES)}, not {role!r}"
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            return f"messages[{i}].content must be a non-empty string"
        if role == "system" and i > 0:
            return f"messages[{i}]: a system message may only come first"
    if not any(m["role"] == "assistant" for m in messages):
        return "no assistant message to train on"
    return None
