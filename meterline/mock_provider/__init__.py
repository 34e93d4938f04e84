"""A fast, deterministic LLM provider for tests, demos and the benchmark: the mock's manual.

APIs (all POST unless said):
- OpenAI: `/v1/chat/completions`, `/v1/completions` (legacy text_completion), `/v1/responses`,
  `/v1/embeddings` (deterministic, similar texts close: `_embeddings.py`; `dimensions`
  honoured, 256 by default), `GET /v1/models` (`MOCK_MODELS`), `GET /healthz`. Errors in
  OpenAI's shape `{"error": {"message", "type", "code", "param"}}`.
- Azure OpenAI: `/openai/deployments/<deployment>/{chat/completions,completions,embeddings}`
  answered like the `/v1` route with model = the deployment name. The `api-version` query
  parameter is required (400 in OpenAI's shape, code `missing_api_version`, without it); an
  `api-key` header is accepted, not checked.
- Anthropic: `/v1/messages` (a Message: one text block, or one tool_use block; stop_reason
  `end_turn` / `max_tokens` / `tool_use`; `max_tokens` is required as upstream) and
  `/v1/messages/count_tokens` (`{"input_tokens": n}`). Errors in Anthropic's shape
  `{"type": "error", "error": {"type", "message"}}` (rate_limit_error, api_error,
  overloaded_error for 529, invalid_request_error, not_found_error, ...).
- No credential is checked (`Authorization`, `x-api-key`, `api-key`: anything or nothing),
  and the mock logs neither them nor any body.

Determinism. No tokenizer and no randomness. Every API is answered from the equivalent
chat-completions conversation (`conversation(api, body)`: Messages' `system` and Responses'
`instructions` become a leading system message, Responses' string `input` and a completions
`prompt` one user message), so the same conversation gets the same reply and usage on every
API. Prompt tokens are `ceil(chars / 4) + 3` per message (`prompt_tokens`); the reply is 8..47
words chosen by the conversation's hash (`completion_for`), one word = one token, capped by
`max_tokens` / `max_completion_tokens` / `max_output_tokens` (finish `length`, Anthropic
`max_tokens`, Responses status `incomplete`). The requested model is echoed. Tool calls:
with `tools` (and `tool_choice` not none) the first tool is called with arguments
`{"q": <8 hex of the hash>}`, or `mock_tool_arguments` (a JSON string) verbatim; a tool call
costs 12 output tokens. A legacy completions list prompt gets one choice per prompt.
Predict any answer's usage with `usage_for(api, body)` (api `chat`, `completions`,
`responses`, `messages`), `input_tokens_for(api, body)` or `plan_for(api, body)` (the words,
finish, tool call and token counts).

Body fields that steer the answer (any API): `mock_reply` (the reply, verbatim) or
`mock_echo: true` (the last user message's text); streamed in 8-character pieces.
`mock_cached_tokens` (or header `x-mock-cached-tokens`): cache-read tokens (chat
`prompt_tokens_details.cached_tokens`, Responses `input_tokens_details.cached_tokens`,
Anthropic `cache_read_input_tokens`). `mock_cache_write_tokens` (or `x-mock-cache-write-tokens`):
Anthropic `cache_creation_input_tokens`. Anthropic's `input_tokens` excludes both, so
input + cache read + cache write = the whole prompt. Without those fields, a Messages `system`
given as blocks with a `cache_control` marker is cached per deployment: the first request
writes the system prompt's tokens, later ones read them. `mock_reasoning_tokens`: reasoning
tokens, added to the output tokens.

Streams (`"stream": true`): chat and completions send `data:` chunks then `data: [DONE]`,
with a usage chunk (empty choices) when `stream_options.include_usage`; Messages sends
Anthropic's events message_start, content_block_start, ping, content_block_delta
(text_delta or input_json_delta)..., content_block_stop, message_delta (stop_reason and
cumulative usage), message_stop; Responses sends response.created, response.in_progress,
response.output_item.added, response.content_part.added, response.output_text.delta...,
response.output_text.done, response.content_part.done, response.output_item.done,
response.completed (response.incomplete when capped) with the whole response and usage (a
function call has response.function_call_arguments.delta/done instead of the part events);
each event carries `type` and `sequence_number`.

Deployments and failure injection over real HTTP, by path prefixes before `/v1` or `/openai`:
- `/d/<name>/...` names a mock deployment (default `default`) with its own counters;
- `/fail/<mode>[:<arg>][x<N>]/...` fails every request of that deployment, or with `xN` only
  the first N requests carrying that prefix (then it answers normally: retry tests). Modes:
  `429` (Retry-After: `<arg>` seconds, default 1; `/fail/429:5/`), `500` or any 4xx/5xx status
  (`503`, `529`: Anthropic's overloaded_error), `context` (400 context-length error:
  OpenAI code `context_length_exceeded`), `timeout` (never answers; waits until the client
  gives up), `slow-stream` (`<arg>` seconds between stream events, default 0.3),
  `disconnect` (the connection is dropped before any byte), `disconnect-mid-stream` (a
  stream drops after its first content delta; a JSON answer after half its body).
- Prefixes combine: `/d/east/fail/500x2/v1/chat/completions`. An unknown mode is a 404.
  Each failure uses the API's own error shape.
- The older switches still work: header `x-mock-fail: <mode>` or a model name prefix (the
  gateway does not forward client headers) `mock-fail-429`, `mock-fail-500`, `mock-timeout`,
  `mock-slow-stream`, `mock-disconnect`; there, 429 says Retry-After 7 and `disconnect`
  means `disconnect-mid-stream`.
- Latency: the process default (`--latency-ms`) or header `x-mock-latency-ms`.

Counters: `GET /mock/stats` returns the requests received per deployment and path (after
the prefixes), every request counted, failed and malformed ones included:
`{"east": {"/v1/chat/completions": 3}}`. `POST /mock/reset` zeroes them, the `xN` budgets
and the prompt cache. `/mock/*` requests are not counted.

A raw ASGI app rather than a framework: it is the benchmark's baseline, so it must cost
as little as possible. Run it with `meterline mock-provider [--latency-ms N]` (127.0.0.1:9100).
"""

from __future__ import annotations

from meterline.mock_provider._app import MOCK_MODELS, MockProvider, create_app, serve
from meterline.mock_provider._shared import (
    Plan,
    completion_for,
    conversation,
    input_tokens_for,
    plan_for,
    prompt_tokens,
    usage_for,
)

__all__ = [
    "MOCK_MODELS",
    "MockProvider",
    "Plan",
    "completion_for",
    "conversation",
    "create_app",
    "input_tokens_for",
    "plan_for",
    "prompt_tokens",
    "serve",
    "usage_for",
]
