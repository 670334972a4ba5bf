"""Loading models offline: what each kind of model string resolves to, and the error that names
a model which is not here (nothing is downloaded, so "check your internet connection" is wrong)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from greentrainer_core.errors import ModelLoadError
from greentrainer_core.models import SHIPPED_MODEL, load_causal_lm, resolve_model_source
from tests.core.tiny import tiny_llama, tiny_tokenizer

REVISION = "0123456789abcdef0123456789abcdef01234567"


def hub_cache_with(cache: Path, repo_id: str) -> Path:
    """A Hugging Face hub cache holding ``repo_id`` (a tiny model) as the hub lays it out."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / REVISION
    tiny_llama(seed=0).save_pretrained(snapshot)
    tiny_tokenizer().save_pretrained(snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REVISION)
    return snapshot


def test_a_hub_id_in_a_given_cache_loads_from_it(tmp_path: Path) -> None:
    snapshot = hub_cache_with(tmp_path / "hub", "acme/tiny-lm")
    model, tokenizer = load_causal_lm("acme/tiny-lm", cache_dir=tmp_path / "hub")
    expected = tiny_llama(seed=0)
    assert torch.equal(model.lm_head.weight, expected.lm_head.weight)
    assert tokenizer.get_vocab() == tiny_tokenizer().get_vocab()
    assert (snapshot / "config.json").is_file()


def test_a_hub_id_missing_from_the_cache_is_named_with_the_cache_and_no_download_hint(
        tmp_path: Path) -> None:
    hub_cache_with(tmp_path / "other", "acme/tiny-lm")
    with pytest.raises(ModelLoadError) as raised:
        load_causal_lm("acme/tiny-lm", cache_dir=tmp_path / "hub")
    message = str(raised.value)
    assert "model 'acme/tiny-lm' is not in the local Hugging Face cache" in message
    assert str(tmp_path / "hub") in message and "nothing is downloaded" in message
    assert SHIPPED_MODEL in message and "internet" not in message


@pytest.mark.parametrize("model, expected", [
    ("/no/such/model", "model '/no/such/model': no such directory or .gguf file"),
    ("./relative-model", "model './relative-model': no such directory or .gguf file"),
    ("~/no-model-here", "model '~/no-model-here': no such directory or .gguf file"),
    ("/no/such/model.gguf", "model file '/no/such/model.gguf' does not exist"),
    ("not a model id", "model 'not a model id' is not a directory, a .gguf file or a Hugging "
                       "Face id"),
])
def test_a_model_string_that_points_nowhere_is_named(tmp_path: Path, model: str,
                                                     expected: str) -> None:
    with pytest.raises(ModelLoadError) as raised:
        resolve_model_source(model, cache_dir=tmp_path)
    assert str(raised.value).startswith(expected), raised.value


def test_a_directory_and_a_file_that_is_no_model(tmp_path: Path) -> None:
    assert resolve_model_source(str(tmp_path)).path == str(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="is a file but not a .gguf file"):
        resolve_model_source(str(tmp_path / "weights.bin"))


def test_loading_a_hub_id_never_touches_the_network(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from huggingface_hub import constants

    hub_cache_with(tmp_path / "hub", "acme/tiny-lm")
    # As when huggingface_hub was imported (by `datasets`, say) before the core set the variable.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    load_causal_lm("acme/tiny-lm", cache_dir=tmp_path / "hub")
    assert attempts == [] and constants.is_offline_mode()
