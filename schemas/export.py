"""JSON Schema export: one file per event and control record (`meterline schemas export`)."""

from __future__ import annotations

from pathlib import Path

import orjson

from schemas.events.v1 import EVENT_ADAPTERS, SCHEMA_VERSION

__all__ = ["export_json_schemas"]


def export_json_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, adapter in sorted(EVENT_ADAPTERS.items()):
        schema = adapter.json_schema(mode="serialization")
        schema["$id"] = f"meterline/{event_type}/v{SCHEMA_VERSION}"
        path = directory / f"{event_type}.v{SCHEMA_VERSION}.schema.json"
        path.write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        written.append(path)
    return written
