"""Chat data (OpenAI's fine-tuning JSONL): rendered through the chat template, loss on the
assistant turns only, every bad line reported by number."""

import json

import pytest

from greentrainer_core.chat import ChatRow, chat_prompt_ids, load_chat_rows, tokenize_chat
from greentrainer_core.data import IGNORE_INDEX, load_examples
from greentrainer_core.errors import DataError
from tests.core.tiny import tiny_chat_tokenizer, tiny_tokenizer

CONVERSATION = [
    {"role": "system", "content": "the news"},
    {"role": "user", "content": "the cat sat on the mat"},
    {"role": "assistant", "content": "cat sat"},
    {"role": "user", "content": "the dog ran to the park"},
    {"role": "assistant", "content": "dog ran"},
]


def _trained(tok, example):
    return tok.decode([t for t, label in zip(example.input_ids, example.labels, strict=True)
                       if label != IGNORE_INDEX])


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_chat_file_trains_on_every_assistant_turn_and_nothing_else(tmp_path):
    tok = tiny_chat_tokenizer()
    path = _write(tmp_path / "chat.jsonl", [{"messages": CONVERSATION}])
    [example] = load_examples(path, tok, max_length=128)
    assert tok.decode(example.input_ids) == (
        "<|im_start|> system the news <|im_end|> <|im_start|> user the cat sat on the mat "
        "<|im_end|> <|im_start|> assistant cat sat <|im_end|> <|im_start|> user the dog ran to "
        "the park <|im_end|> <|im_start|> assistant dog ran <|im_end|>")
    assert _trained(tok, example) == "cat sat <|im_end|> dog ran <|im_end|>"


def test_every_bad_line_is_reported_with_its_number_and_problem(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join([
        json.dumps({"messages": CONVERSATION}),
        "{not json",
        json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
        json.dumps({"messages": [{"role": "robot", "content": "hi"}]}),
        json.dumps({"messages": [{"role": "user", "content": "hi"},
                                 {"role": "assistant", "content": ""}]}),
    ]))
    with pytest.raises(DataError) as error:
        load_chat_rows(path)
    message = str(error.value)
    assert "4 unusable row(s)" in message
    assert "line 2: not valid JSON" in message
    assert "line 3: no assistant message to train on" in message
    assert "line 4: messages[0].role must be one of system, user, assistant, not 'robot'" in message
    assert "line 5: messages[1].content must be a non-empty string" in message


def test_long_conversation_keeps_its_beginning_and_one_without_a_reply_in_reach_is_refused():
    tok = tiny_chat_tokenizer()
    row = ChatRow(0, tuple(CONVERSATION))
    [cut] = tokenize_chat([row], tok, max_length=20)
    assert len(cut.input_ids) == 20
    assert _trained(tok, cut) == "cat sat <|im_end|>"
    with pytest.raises(DataError, match="row 0: no assistant token within max_length=8"):
        tokenize_chat([row], tok, max_length=8)


def test_tokenizer_without_a_chat_template_is_refused():
    with pytest.raises(DataError, match="chat template"):
        tokenize_chat([ChatRow(0, tuple(CONVERSATION))], tiny_tokenizer())


def test_evaluation_prompt_ends_with_the_assistant_header_before_the_last_reply():
    tok = tiny_chat_tokenizer()
    row = ChatRow(0, tuple(CONVERSATION))
    assert tok.decode(chat_prompt_ids(tok, row)).endswith(
        "user the dog ran to the park <|im_end|> <|im_start|> assistant")
    assert row.reply == "dog ran"


def test_shipped_smollm2_template_masks_its_default_system_prompt(tmp_path):
    from transformers import AutoTokenizer

    from greentrainer_core.models import shipped_model_source

    source = shipped_model_source()
    tok = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file,
                                        local_files_only=True)
    row = ChatRow(0, ({"role": "user", "content": "Summarize: the cat sat on the mat"},
                      {"role": "assistant", "content": "A cat sat."}))
    [example] = tokenize_chat([row], tok)
    assert "You are a helpful AI assistant" in tok.decode(example.input_ids)
    assert _trained(tok, example) == "A cat sat.<|im_end|>\n"
