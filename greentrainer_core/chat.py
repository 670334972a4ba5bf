"""Chat data: OpenAI's fine-tuning JSONL (one ``{"messages": [...]}`` per line) rendered through
the tokenizer's chat template, with the loss on the assistant turns only.

Each assistant turn's span in the rendered text is found by rendering the conversation up to it
(with the generation prompt: where the reply starts) and up to its end; the tokens of the whole
conversation whose characters fall inside a span are trained (the reply and the template's
end-of-turn marker, so the model learns to stop), every other token is masked. This needs a
template whose rendering of a prefix of the conversation is a prefix of the whole (true of the
ChatML-style templates, SmolLM2's included); a row that breaks it is reported, not guessed at.
Conversations longer than ``max_length`` tokens keep their beginning.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from greentrainer_core.chat_messages import message_problem
from greentrainer_core.data import IGNORE_INDEX, Example, raise_problems
from greentrainer_core.errors import DataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

@dataclass(frozen=True)
class ChatRow:
    """One conversation; ``index`` is the 0-based line number among the file's non-blank lines."""

    index: int
    messages: tuple[dict[str, str], ...]

    @property
    def prompt(self) -> tuple[dict[str, str], ...]:
        """The messages before the last assistant turn (what an evaluation prompts with)."""
        last = max(i for i, m in enumerate(self.messages) if m["role"] == "assistant")
        return self.messages[:last]

    @property
    def reply(self) -> str:
        """The last assistant turn's text (an evaluation's reference)."""
        return [m for m in self.messages if m["role"] == "assistant"][-1]["content"]


def is_chat_file(path: str | Path) -> bool:
    """Whether a JSONL file holds chat rows: its first non-blank line has ``messages``."""
    with open(path, encoding="utf-8-sig") as handle:
        for line in handle:
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(record, dict) and "messages" in record
    return False


def load_chat_rows(path: str | Path) -> list[ChatRow]:
    """Read a chat JSONL file. Raises DataError listing every unusable line (1-based numbers)."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data file {str(file)!r} does not exist")
    rows: list[ChatRow] = []
    problems: list[str] = []
    text = file.read_text(encoding="utf-8-sig")
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: not valid JSON ({exc.msg})")
            continue
        problem = ("expected a JSON object with 'messages'"
                   if not isinstance(record, dict) else message_problem(record.get("messages")))
        if problem:
            problems.append(f"line {number}: {problem}")
            continue
        messages = tuple({"role": m["role"], "content": m["content"]} for m in record["messages"])
        rows.append(ChatRow(len(rows), messages))
    raise_problems(file, problems)
    if not rows:
        raise DataError(f"data file {str(file)!r} has no rows")
    return rows


def _render(tokenizer: PreTrainedTokenizerBase, messages: Sequence[dict[str, str]],
            generation_prompt: bool) -> str:
    text = tokenizer.apply_chat_template(list(messages), tokenize=False,
                                         add_generation_prompt=generation_prompt)
    return str(text)


def chat_prompt_ids(tokenizer: PreTrainedTokenizerBase, row: ChatRow) -> list[int]:
    """Token ids of the conversation before its last reply, ending with the assistant's header:
    the prompt a model continues when it is evaluated."""
    ids: list[int] = tokenizer(_render(tokenizer, row.prompt, True),
                               add_special_tokens=False)["input_ids"]
    return ids


def tokenize_chat(rows: Sequence[ChatRow], tokenizer: PreTrainedTokenizerBase, *,
                  max_length: int = 512, file: str | Path = "<rows>") -> list[Example]:
    """Render and tokenize conversations; labels are IGNORE_INDEX except on assistant turns.

    Raises DataError when the tokenizer has no chat template or is not a fast tokenizer (the
    character offsets are needed), and lists rows the template renders inconsistently or whose
    first reply starts beyond ``max_length``."""
    if not getattr(tokenizer, "chat_template", None):
        raise DataError("chat data needs a tokenizer with a chat template; this model's has none")
    if not getattr(tokenizer, "is_fast", False):
        raise DataError("chat data needs a fast tokenizer (for character offsets)")
    examples: list[Example] = []
    problems: list[str] = []
    for row in rows:
        text = _render(tokenizer, row.messages, False)
        spans = []
        for i, message in enumerate(row.messages):
            if message["role"] != "assistant":
                continue
            start = _render(tokenizer, row.messages[:i], True) if i else ""
            end = _render(tokenizer, row.messages[: i + 1], False)
            if not (text.startswith(start) and text.startswith(end) and len(start) < len(end)):
                problems.append(f"row {row.index}: the chat template does not render turn {i} "
                                "as a prefix of the conversation")
                break
            spans.append((len(start), len(end)))
        else:
            encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            ids = list(encoded["input_ids"])[:max_length]
            offsets = list(encoded["offset_mapping"])[: len(ids)]
            labels = [tok if any(a <= s < b for a, b in spans) else IGNORE_INDEX
                      for tok, (s, _) in zip(ids, offsets, strict=True)]
            if all(label == IGNORE_INDEX for label in labels):
                problems.append(f"row {row.index}: no assistant token within "
                                f"max_length={max_length}")
                continue
            examples.append(Example(ids, labels))
    raise_problems(file, problems)
    return examples
