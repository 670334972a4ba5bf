"""Tiny randomly initialised models of every architecture the profiler must handle (no download)."""

from __future__ import annotations

import torch
import transformers as tf

VOCAB = 128


def _llama(**extra):
    return tf.LlamaForCausalLM(
        tf.LlamaConfig(
            vocab_size=VOCAB, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True, **extra,
        )
    )


BUILDERS = {
    # SmolLM2's shape in miniature: LLaMA with grouped-query attention and tied embeddings.
    "llama": _llama,
    "qwen2": lambda: tf.Qwen2ForCausalLM(
        tf.Qwen2Config(
            vocab_size=VOCAB, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
        )
    ),
    "mistral": lambda: tf.MistralForCausalLM(
        tf.MistralConfig(
            vocab_size=VOCAB, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=12,
        )
    ),
    "opt": lambda: tf.OPTForCausalLM(
        tf.OPTConfig(
            vocab_size=VOCAB, hidden_size=48, ffn_dim=96, num_hidden_layers=2,
            num_attention_heads=4, word_embed_proj_dim=48, max_position_embeddings=128,
        )
    ),
    "bloom": lambda: tf.BloomForCausalLM(tf.BloomConfig(vocab_size=VOCAB, hidden_size=48, n_layer=2, n_head=4)),
    "gpt2": lambda: tf.GPT2LMHeadModel(
        tf.GPT2Config(vocab_size=VOCAB, n_embd=48, n_layer=2, n_head=4, n_positions=128)
    ),
    "gpt_neox": lambda: tf.GPTNeoXForCausalLM(
        tf.GPTNeoXConfig(
            vocab_size=VOCAB, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=128,
        )
    ),
    "t5": lambda: tf.T5ForConditionalGeneration(
        tf.T5Config(
            vocab_size=VOCAB, d_model=48, d_kv=12, d_ff=96, num_layers=2, num_decoder_layers=2,
            num_heads=4, decoder_start_token_id=0, tie_word_embeddings=False,
        )
    ),
}


def build(arch: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return BUILDERS[arch]()


def batch(model: torch.nn.Module, batch_size: int, seq_len: int, target_len: int | None = None, seed: int = 0) -> dict:
    """A real batch with some left padding, the shape profile_model(...) is asked for."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (batch_size, seq_len), generator=g)
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    if model.config.is_encoder_decoder:
        labels = torch.randint(3, VOCAB, (batch_size, target_len or seq_len), generator=g)
    else:
        labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
