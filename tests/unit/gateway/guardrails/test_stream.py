"""StreamGuard: nothing offending is released, however the text is split into chunks."""

from __future__ import annotations

import pytest

from gateway.guardrails import StreamGuard
from gateway.guardrails.stream import MIN_HOLD

OPENAI_KEY = "sk-proj-" + "Ab3Xy9" * 8
TEXT = (
    f"Sure. The key is {OPENAI_KEY} and the owner is jane.doe@corp.example.com, "
    "phone +44 20 7946 0958. That is all I know about it, really, nothing more."
)


def run(guard: StreamGuard, chunks: list[str]) -> tuple[list[str], list]:
    released, hits = [], []
    for chunk in chunks:
        text, found = guard.feed(chunk)
        released.append(text)
        hits += found
    text, found = guard.flush()
    return [*released, text], hits + found


@pytest.mark.parametrize("size", [1, 3, 7, 16, 50, len(TEXT)])
def test_split_secrets_are_redacted_whatever_the_chunking(size: int) -> None:
    guard = StreamGuard({"pii": "redact", "secrets": "redact"})
    chunks = [TEXT[i : i + size] for i in range(0, len(TEXT), size)]
    released, hits = run(guard, chunks)
    joined = "".join(released)
    assert joined == (
        "Sure. The key is [REDACTED:openai_key] and the owner is [REDACTED:email], "
        "phone [REDACTED:phone]. That is all I know about it, really, nothing more."
    )
    # no release ever carried a piece of the key: at most its prefix, never the token
    assert not any("Ab3Xy9" in piece for piece in released)
    assert {(h.finding.category, h.action) for h in hits} == {
        ("openai_key", "redact"),
        ("email", "redact"),
        ("phone", "redact"),
    }
    assert all(OPENAI_KEY not in h.excerpt and "jane.doe@" not in h.excerpt for h in hits)


def test_text_is_released_once_judged_and_held_only_at_the_end() -> None:
    guard = StreamGuard({"secrets": "redact"}, hold=1)  # at least MIN_HOLD anyway
    prose = "hello world, " * 6
    text, hits = guard.feed(prose)
    assert text == prose[: len(prose) - MIN_HOLD] and hits == []
    text, _ = guard.feed("sk-proj-" + "x" * 60)
    assert text == prose[len(prose) - MIN_HOLD :]  # an unfinished token is never released
    assert guard.flush() == ("sk-proj-" + "x" * 60, [])  # not random: not a key


def test_block_stops_before_anything_of_the_secret_is_released() -> None:
    guard = StreamGuard({"secrets": "block", "pii": "monitor"})
    released = []
    hits = []
    for i in range(0, len(TEXT), 4):
        text, found = guard.feed(TEXT[i : i + 4])
        released.append(text)
        if found:
            hits = found
            break
    assert [h.action for h in hits] == ["block"] and hits[0].finding.category == "openai_key"
    assert "sk-p" not in "".join(released)


def test_monitor_reports_but_does_not_change_text() -> None:
    guard = StreamGuard({"pii": "monitor"})
    released, hits = run(guard, [TEXT[i : i + 5] for i in range(0, len(TEXT), 5)])
    assert "".join(released) == TEXT
    assert [(h.finding.category, h.action) for h in hits] == [
        ("email", "monitor"),
        ("phone", "monitor"),
    ]
    assert hits[0].excerpt == "jane…[REDACTED]"


def test_an_unterminated_private_key_is_held_to_the_end_and_masked() -> None:
    guard = StreamGuard({"secrets": "redact"})
    pem = "-----BEGIN RSA PRIVATE KEY-----\n" + "MIIEow IBAAKCAQEA\n" * 40
    released, hits = run(guard, ["here: ", *(pem[i : i + 9] for i in range(0, len(pem), 9))])
    assert "".join(released) == "here: [REDACTED:private_key]"
    assert [h.finding.category for h in hits] == ["private_key"]


def test_code_fences_carry_across_chunks() -> None:
    guard = StreamGuard({"pii": "redact"})
    chunks = ["Example:\n``", "`\nconst to = 'bob@example.com';\n", "```\nmail me: a@b.io ok"]
    released, hits = run(guard, chunks)
    assert "".join(released) == (
        "Example:\n```\nconst to = 'bob@example.com';\n```\nmail me: [REDACTED:email] ok"
    )
    assert len(hits) == 1


def test_a_lookbehind_sees_released_context() -> None:
    guard = StreamGuard({"secrets": "redact"})
    released, hits = run(guard, ["word", "x", "sk-proj-" + "Ab3Xy9" * 8, " done"])
    assert hits == [] and "".join(released) == "wordxsk-proj-" + "Ab3Xy9" * 8 + " done"
