"""prompt_signature counts short prompts in plain Python: byte-identical to the numpy
implementation (the format is a cross-service contract) on many random inputs."""

from __future__ import annotations

import random

from schemas.signature import MAX_BYTES, _signature_numpy, _signature_python, prompt_signature

ALPHABETS = [
    "ab",
    "abcdefghij klmnop\n",
    "".join(map(chr, range(32, 127))),
    "é中😀\x00\x7f",
]


def _random_text(rng: random.Random, length: int) -> str:
    alphabet = rng.choice(ALPHABETS)
    return "".join(rng.choice(alphabet) for _ in range(length))


def test_the_python_and_numpy_counts_agree_byte_for_byte() -> None:
    rng = random.Random(16)
    for _ in range(20_000):
        data = _random_text(rng, rng.randrange(0, 120)).encode()[:MAX_BYTES]
        assert _signature_python(data) == _signature_numpy(data), data
    for _ in range(300):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 5000)))[:MAX_BYTES]
        assert _signature_python(data) == _signature_numpy(data)


def test_prompt_signature_is_the_numpy_signature_at_every_length() -> None:
    rng = random.Random(61)
    for length in range(0, 80):
        for _ in range(50):
            text = _random_text(rng, length)
            assert prompt_signature(text) == _signature_numpy(text.encode()[:MAX_BYTES])
    assert prompt_signature("") is None and prompt_signature("ab") is None
    assert prompt_signature("Say hello.") == "00404000202000000000002000200000"  # as before
