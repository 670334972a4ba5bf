"""Tiny random-init models and a word-level tokenizer built in-process (no hub), for fast tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
WORDS = (
    "the a cat dog sat on mat ran to park bird sang in tree sun rose over hill rain fell all day "
    "kids played ball team won game market rose sharply city built new bridge river flooded town "
    "TL ; DR : . , summary news report man woman car road stopped near school lunch ate apple"
).split()


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(SPECIALS + sorted(set(WORDS)))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )


def tiny_llama(seed: int = 0, vocab_size: int = 128, tie: bool = False) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=tie,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return LlamaForCausalLM(config)


def tiny_gemma3(seed: int = 0, vocab_size: int = 128) -> PreTrainedModel:
    """A second model family (Gemma 3: tied embedding, q/k norms, sliding-window layers), as the
    accuracy benchmark runs `gemma-3-270m` (docs/core-training.md)."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=256,
        sliding_window=16, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )
    return Gemma3ForCausalLM(config)


ROWS = [
    ("the cat sat on the mat all day", "cat sat on mat"),
    ("the dog ran to the park and the bird sang in the tree", "dog ran to park"),
    ("the sun rose over the hill and rain fell all day", "sun rose"),
    ("kids played ball and the team won the game", "team won game"),
    ("the market rose sharply in the city", "market rose"),
    ("the city built a new bridge over the river", "city built bridge"),
    ("the river flooded the town all day", "river flooded town"),
    ("a man stopped the car on the road near the school", "man stopped car"),
]


def write_jsonl(path: Path, rows=ROWS, source: str = "source", target: str = "target") -> Path:
    path.write_text("".join(json.dumps({source: s, target: t}) + "\n" for s, t in rows))
    return path


CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_chat_tokenizer() -> PreTrainedTokenizerFast:
    """The tiny word-level tokenizer with ChatML markers and a ChatML chat template."""
    tok = tiny_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.add_tokens(["system", "user", "assistant"])
    tok.chat_template = CHATML
    return tok
