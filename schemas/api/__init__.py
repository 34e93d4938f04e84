"""The HTTP APIs' answers: `read` (ingest's read API, ARCHITECTURE §10).

The serving route declares the model as its `response_model`, and the client parses the
answer with the same model, so the wire shape is written once."""

__all__: list[str] = []
