"""What makes two requests the same answer: gateway/cache/keys.py."""

from __future__ import annotations

from gateway.cache.keys import (
    carries_tools_or_media,
    directive_of,
    exact_key,
    semantic_partition,
)

IGNORED = frozenset({"user", "metadata"})
BODY = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "hi"}],
    "temperature": 0.2,
    "tools": [{"type": "function", "function": {"name": "f"}}],
}


def key(body: dict, partition: str = "org:acme", api: str = "chat") -> bytes:
    return exact_key(partition, api, body, IGNORED)


def test_field_order_and_ignored_params_do_not_change_the_key() -> None:
    reordered = dict(reversed(list(BODY.items())))
    assert key(reordered) == key(BODY)
    assert key({**BODY, "user": "ana", "metadata": {"a": 1}}) == key(BODY)
    assert len(key(BODY)) == 16


def test_everything_that_affects_the_answer_changes_the_key() -> None:
    variants = [
        {**BODY, "model": "gpt-4o-mini"},
        {**BODY, "messages": [{"role": "user", "content": "hi!"}]},
        {**BODY, "temperature": 0.3},
        {**BODY, "tools": []},
        {**BODY, "response_format": {"type": "json_object"}},
        {**BODY, "stream": True},
    ]
    keys = {key(v) for v in variants} | {key(BODY)}
    assert len(keys) == len(variants) + 1


def test_the_partition_and_the_api_are_part_of_the_key() -> None:
    assert key(BODY, "org:acme") != key(BODY, "org:globex")
    assert key(BODY, "org:acme") != key(BODY, "key:k1")
    assert key(BODY, api="chat") != key(BODY, api="responses")


def test_semantic_partition_ignores_only_the_prompt() -> None:
    def part(body: dict, partition: str = "org:acme") -> bytes:
        return semantic_partition(partition, "chat", body, IGNORED, ("messages",))

    other_prompt = {**BODY, "messages": [{"role": "user", "content": "hello"}]}
    assert part(other_prompt) == part(BODY)
    assert part({**BODY, "temperature": 1.0}) != part(BODY)
    assert part(BODY, "org:globex") != part(BODY)


def test_tool_results_and_images_are_found_anywhere_in_a_prompt() -> None:
    assert not carries_tools_or_media(BODY["messages"])
    assert carries_tools_or_media([{"role": "tool", "content": "42", "tool_call_id": "c"}])
    image = {"type": "image_url", "image_url": {"url": "data:..."}}
    assert carries_tools_or_media([{"role": "user", "content": [image]}])
    tool_result = {"type": "tool_result", "tool_use_id": "t", "content": "x"}
    assert carries_tools_or_media([{"role": "user", "content": [tool_result]}])
    assert carries_tools_or_media([{"type": "function_call_output", "output": "x"}])


def test_directives_from_headers() -> None:
    assert directive_of([]) == "use"
    assert directive_of([(b"x-meterline-cache", b"off")]) == "skip"
    assert directive_of([(b"x-meterline-cache", b"Refresh")]) == "refresh"
    assert directive_of([(b"cache-control", b"max-age=0, no-store")]) == "skip"
    assert directive_of([(b"cache-control", b"no-cache")]) == "refresh"
    assert directive_of([(b"cache-control", b"no-cache"), (b"x-meterline-cache", b"off")]) == "skip"
