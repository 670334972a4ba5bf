"""Summarization data: local JSONL/CSV/Parquet files -> tokenized examples with loss on the target only.

Prompt formats are the paper's (section 4): decoder-only models see ``"[source] TL;DR: [target]"``
and are trained on the target tokens only; encoder-decoder models (T5) get ``"summarize: [source]"``
as encoder input and the target as labels. Sources are truncated (from the end) to fit
``max_length``; targets to ``max_target_length``. Rows that cannot be used are reported all at once
in one DataError naming the row numbers and the problem.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from greentrainer_core.errors import DataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100  # label value that the loss skips (prompt and padding tokens)
DECODER_PROMPT_SUFFIX = " TL;DR:"  # "[source] TL;DR: [target]": the space before the target
T5_PROMPT_PREFIX = "summarize: "  # is tokenized with the target, as BPE attaches it to the word
_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
_MAX_REPORTED_ROWS = 5


@dataclass(frozen=True)
class SummaryRow:
    """One raw (source, target) pair; ``index`` is the 0-based row number in its file."""

    index: int
    source: str
    target: str


@dataclass(frozen=True)
class Example:
    """A tokenized training example. Decoder-only: ``labels`` equals ``input_ids`` with the prompt
    masked to IGNORE_INDEX. Seq2seq: ``input_ids`` is the encoder input, ``labels`` the target."""

    input_ids: list[int]
    labels: list[int]


def load_rows(
    path: str | Path, source_field: str = "source", target_field: str = "target"
) -> list[SummaryRow]:
    """Read a JSONL/JSON/CSV/Parquet file with the `datasets` library.

    Raises DataError when the file is missing, has an unsupported suffix, is empty or unreadable,
    lacks either field, or has rows whose fields are missing or blank.
    """
    import datasets

    file = Path(path)
    builder = _BUILDERS.get(file.suffix.lower())
    if builder is None:
        raise DataError(
            f"data file {str(file)!r}: unsupported format {file.suffix!r} (use one of {sorted(_BUILDERS)})"
        )
    if not file.is_file():
        raise DataError(f"data file {str(file)!r} does not exist")
    if file.stat().st_size == 0:
        raise DataError(f"data file {str(file)!r} is empty")
    try:
        table = datasets.load_dataset(builder, data_files=str(file), split="train")
    except Exception as exc:  # datasets raises many unrelated types for malformed files
        raise DataError(f"data file {str(file)!r} cannot be read as {builder}: {exc}") from exc
    if len(table) == 0:
        raise DataError(f"data file {str(file)!r} has no rows")
    missing = [f for f in (source_field, target_field) if f not in table.column_names]
    if missing:
        raise DataError(
            f"data file {str(file)!r} has no field(s) {missing}; its fields are {table.column_names}"
        )
    rows: list[SummaryRow] = []
    problems: list[str] = []
    for i, (source, target) in enumerate(
        zip(table[source_field], table[target_field], strict=True)
    ):
        bad = [
            f
            for f, v in ((source_field, source), (target_field, target))
            if not isinstance(v, str) or not v.strip()
        ]
        if bad:
            problems.append(f"row {i}: field(s) {bad} missing or blank")
        else:
            rows.append(SummaryRow(i, source, target))
    raise_problems(file, problems)
    return rows


def raise_problems(file: str | Path, problems: list[str]) -> None:
    """Raise one DataError naming the first few problems and how many there are (none: return)."""
    if not problems:
        return
    shown = "; ".join(problems[:_MAX_REPORTED_ROWS])
    more = (
        f" (and {len(problems) - _MAX_REPORTED_ROWS} more)"
        if len(problems) > _MAX_REPORTED_ROWS
        else ""
    )
    raise DataError(f"data file {str(file)!r}: {len(problems)} unusable row(s): {shown}{more}")


def decoder_prompt_ids(tokenizer: PreTrainedTokenizerBase, source_ids: Sequence[int]) -> list[int]:
    """Token ids of ``"[bos][source] TL;DR:"``: the prompt a decoder-only model continues."""
    bos = tokenizer("", add_special_tokens=True)["input_ids"]
    suffix = tokenizer(DECODER_PROMPT_SUFFIX, add_special_tokens=False)["input_ids"]
    return [*bos, *source_ids, *suffix]


def tokenize_rows(
    rows: Sequence[SummaryRow],
    tokenizer: PreTrainedTokenizerBase,
    *,
    is_encoder_decoder: bool = False,
    max_length: int = 512,
    max_target_length: int = 128,
    file: str | Path = "<rows>",
) -> list[Example]:
    """Tokenize rows into training examples (see the module docstring for the formats).

    Raises DataError listing rows whose source or target tokenizes to nothing, and rows whose
    target (plus the prompt's fixed tokens and at least one source token) cannot fit ``max_length``.
    """
    if max_length < 2 or max_target_length < 1:
        raise DataError(
            f"max_length={max_length} and max_target_length={max_target_length} are too small"
        )
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    fixed = len(decoder_prompt_ids(tokenizer, []))
    examples: list[Example] = []
    problems: list[str] = []
    for row in rows:
        prefix = T5_PROMPT_PREFIX if is_encoder_decoder else ""
        source_ids = tokenizer(prefix + row.source, add_special_tokens=False)["input_ids"]
        target_ids = tokenizer(
            (" " if not is_encoder_decoder else "") + row.target, add_special_tokens=False
        )["input_ids"]
        if len(source_ids) <= len(tokenizer(prefix, add_special_tokens=False)["input_ids"]):
            problems.append(f"row {row.index}: source tokenizes to nothing")
            continue
        if not target_ids:
            problems.append(f"row {row.index}: target tokenizes to nothing")
            continue
        target_ids = target_ids[: max_target_length - len(eos)] + eos
        if is_encoder_decoder:
            examples.append(Example(source_ids[: max_length - len(eos)] + eos, target_ids))
            continue
        room = max_length - fixed - len(target_ids)
        if room < 1:
            problems.append(
                f"row {row.index}: target needs {len(target_ids)} tokens plus {fixed} prompt tokens, "
                f"which leaves no room for the source within max_length={max_length}"
            )
            continue
        prompt = decoder_prompt_ids(tokenizer, source_ids[:room])
        examples.append(Example(prompt + target_ids, [IGNORE_INDEX] * len(prompt) + target_ids))
    raise_problems(file, problems)
    return examples


def load_examples(
    path: str | Path,
    tokenizer: PreTrainedTokenizerBase,
    *,
    source_field: str = "source",
    target_field: str = "target",
    is_encoder_decoder: bool = False,
    max_length: int = 512,
    max_target_length: int = 128,
) -> list[Example]:
    """`load_rows` then `tokenize_rows`: the training examples of one file. A JSONL file of
    chat rows (``messages``) goes through `greentrainer_core.chat` instead (the fields and
    ``max_target_length`` do not apply to it)."""
    from greentrainer_core.chat import is_chat_file, load_chat_rows, tokenize_chat

    if Path(path).suffix.lower() in (".jsonl", ".json") and Path(path).is_file() \
            and is_chat_file(path):
        if is_encoder_decoder:
            raise DataError("chat data needs a decoder-only model with a chat template")
        return tokenize_chat(load_chat_rows(path), tokenizer, max_length=max_length, file=path)
    rows = load_rows(path, source_field, target_field)
    return tokenize_rows(
        rows,
        tokenizer,
        is_encoder_decoder=is_encoder_decoder,
        max_length=max_length,
        max_target_length=max_target_length,
        file=path,
    )


def collate(
    examples: Sequence[Example],
    pad_token_id: int,
    *,
    pad_to: int | None = None,
    multiple_of: int = 1,
    max_width: int | None = None,
    max_label_width: int | None = None,
) -> dict[str, torch.Tensor]:
    """Right-pad a batch. Returns input_ids, attention_mask and labels of shape [batch, length]
    (seq2seq: labels have their own length). ``pad_to`` fixes the length; otherwise the longest
    example, rounded up to ``multiple_of`` (fewer distinct shapes means fewer FLOPs profiles) but
    not beyond ``max_width`` (seq2seq labels: ``max_label_width``)."""
    decoder_only = all(len(e.input_ids) == len(e.labels) for e in examples)

    def width(lengths: list[int], cap: int | None, fixed: int | None) -> int:
        longest = max(lengths)
        rounded = -(-longest // multiple_of) * multiple_of
        return max(fixed or 0, longest, min(rounded, cap or rounded))

    n = width([len(e.input_ids) for e in examples], max_width, pad_to)
    input_ids = torch.full((len(examples), n), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), n), dtype=torch.long)
    fixed_labels = (
        max_label_width if pad_to else None
    )  # fixed shapes: labels padded to their max too
    m = (
        n
        if decoder_only
        else width([len(e.labels) for e in examples], max_label_width, fixed_labels)
    )
    labels = torch.full((len(examples), m), IGNORE_INDEX, dtype=torch.long)
    for i, e in enumerate(examples):
        input_ids[i, : len(e.input_ids)] = torch.tensor(e.input_ids)
        attention_mask[i, : len(e.input_ids)] = 1
        labels[i, : len(e.labels)] = torch.tensor(e.labels)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def epoch_order(n_examples: int, epoch: int, seed: int) -> list[int]:
    """The shuffled example order of an epoch: a pure function of (seed, epoch), so a resumed run
    sees exactly the batches that the interrupted one would have seen."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n_examples, generator=generator).tolist()


def iter_batches(
    examples: Sequence[Example],
    batch_size: int,
    epoch: int,
    seed: int,
    pad_token_id: int,
    *,
    start_batch: int = 0,
    pad_to: int | None = None,
    multiple_of: int = 1,
    max_width: int | None = None,
    max_label_width: int | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield the epoch's collated batches from ``start_batch`` on (the last batch may be smaller)."""
    order = epoch_order(len(examples), epoch, seed)
    for b in range(start_batch, -(-len(order) // batch_size)):
        chunk = [examples[i] for i in order[b * batch_size : (b + 1) * batch_size]]
        yield collate(
            chunk,
            pad_token_id,
            pad_to=pad_to,
            multiple_of=multiple_of,
            max_width=max_width,
            max_label_width=max_label_width,
        )
