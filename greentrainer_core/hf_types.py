"""Type aliases for the Hugging Face objects the core passes around (imports nothing heavy).

A model is a transformers ``PreTrainedModel`` or a peft ``PeftModel`` wrapping one: the core reads
its ``config`` (``is_encoder_decoder``, ``model_type``), calls ``generate()``,
``save_pretrained()`` and ``get_input_embeddings()``, and takes ``.loss`` from its output. The two
classes share no typed base with those members, and ``torch.nn.Module.__getattr__`` types every
one of them as ``Tensor | Module``, so a model is typed ``Any`` here, by this one name.
Functions that use only ``torch.nn.Module``'s own API keep taking ``torch.nn.Module``.
"""

from __future__ import annotations

from typing import Any, TypeAlias

#: transformers' PreTrainedModel or a peft PeftModel: its config and generate() are untyped to mypy.
PreTrainedLM: TypeAlias = Any
