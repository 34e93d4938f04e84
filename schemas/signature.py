"""The prompt content signature: a cheap fingerprint of what prompts look like, not what
they say.

Prompt text is not stored (ARCHITECTURE §4), so drift in content is seen through
RequestEvent.prompt_signature: the UTF-8 character 3-grams of the prompt's first 4 KiB,
hashed into 16 buckets, each bucket's share scaled to a byte, hex-encoded (32 digits).
Prose, code and encoded blobs put visibly different mass into the buckets, and the
signature reveals nothing readable about the prompt.

`prompt_signature()` is what the gateway writes (gateway/signature.py picks the text);
`signature_mass()` is what the drift detector reads back. Both live in schemas because the
signature is part of the RequestEvent format, shared by producer and consumer.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_BYTES", "SIGNATURE_BUCKETS", "prompt_signature", "signature_mass"]

SIGNATURE_BUCKETS = 16
MAX_BYTES = 4096  # bounds the cost on the request path (~20 us in numpy)
_KNUTH = np.uint32(2654435761)  # multiplicative hashing; the top bits pick the bucket
_SHIFT = 32 - 4  # 16 buckets = the top 4 bits of the 32-bit hash


def prompt_signature(text: str) -> str | None:
    """The signature of a prompt, or None when it has fewer than 3 bytes."""
    data = np.frombuffer(text.encode()[:MAX_BYTES], dtype=np.uint8).astype(np.uint32)
    if data.size < 3:
        return None
    grams = (data[:-2] << 16) | (data[1:-1] << 8) | data[2:]
    buckets = (grams * _KNUTH) >> _SHIFT  # uint32 arithmetic wraps: that is the hash
    counts = np.bincount(buckets, minlength=SIGNATURE_BUCKETS)
    shares = np.rint(counts * 255 / counts.sum()).astype(np.uint8)
    return shares.tobytes().hex()


def signature_mass(signature: str) -> np.ndarray:
    """The 16 bucket shares (summing to 1) of a signature; ValueError if malformed."""
    if len(signature) != 2 * SIGNATURE_BUCKETS:
        raise ValueError(f"expected {2 * SIGNATURE_BUCKETS} hex digits, got {len(signature)}")
    shares = np.frombuffer(bytes.fromhex(signature), dtype=np.uint8).astype(np.float64)
    total = shares.sum()
    if total == 0:
        raise ValueError("every bucket is empty")
    return shares / total
