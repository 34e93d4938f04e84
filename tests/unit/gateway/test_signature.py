"""The gateway's prompt_signature is the drift detector's signature of the prompt text."""

from __future__ import annotations

from gateway.apis import CHAT, EMBEDDINGS, prompt_texts
from gateway.signature import prompt_text, request_signature
from schemas.signature import MAX_BYTES, prompt_signature, signature_mass


def test_chat_signature_is_the_drift_signature_of_the_messages_text() -> None:
    body = CHAT.parse(
        b'{"model": "m", "messages": ['
        b'{"role": "system", "content": "You are terse."},'
        b'{"role": "user", "content": [{"type": "text", "text": "What is"},'
        b'{"type": "image_url", "image_url": {"url": "data:,x"}},'
        b'{"type": "text", "text": "PSI?"}]},'
        b'{"role": "assistant", "content": null, "tool_calls": []}]}'
    ).body

    signature = request_signature(prompt_texts(CHAT, body))

    assert prompt_text(prompt_texts(CHAT, body)) == "You are terse.\nWhat is\nPSI?"
    assert signature == prompt_signature("You are terse.\nWhat is\nPSI?")
    assert signature is not None and signature_mass(signature).sum() > 0.99


def test_embeddings_signature_and_inputs_without_text() -> None:
    strings = EMBEDDINGS.parse(b'{"model": "e", "input": ["first doc", "second doc"]}').body
    assert request_signature(prompt_texts(EMBEDDINGS, strings)) == prompt_signature(
        "first doc\nsecond doc"
    )
    single = EMBEDDINGS.parse(b'{"model": "e", "input": "one doc"}').body
    assert request_signature(prompt_texts(EMBEDDINGS, single)) == prompt_signature("one doc")
    tokens = EMBEDDINGS.parse(b'{"model": "e", "input": [[1, 2, 3]]}').body
    assert request_signature(prompt_texts(EMBEDDINGS, tokens)) is None
    short = CHAT.parse(b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}').body
    assert request_signature(prompt_texts(CHAT, short)) is None  # fewer than 3 bytes


def test_long_prompts_are_cut_without_changing_the_signature() -> None:
    # Multi-byte characters, many messages, one huge message: only the first 4 KiB count.
    messages = [{"role": "user", "content": f"zähle bis {i} — ok"} for i in range(400)]
    messages.append({"role": "user", "content": "x" * 1_000_000})
    body = {"model": "m", "messages": messages}
    full = "\n".join(m["content"] for m in messages)

    text = prompt_text(prompt_texts(CHAT, body))

    assert len(text) == MAX_BYTES and full.startswith(text)
    assert request_signature(prompt_texts(CHAT, body)) == prompt_signature(full)
    huge = {"model": "m", "messages": [{"role": "user", "content": "é" * 100_000}]}
    assert len(prompt_text(prompt_texts(CHAT, huge))) == MAX_BYTES
    assert request_signature(prompt_texts(CHAT, huge)) == prompt_signature("é" * 100_000)
