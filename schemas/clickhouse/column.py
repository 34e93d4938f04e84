"""The ClickHouse column a model field is stored in, declared next to the field.

`Annotated[str, ch.LOW]` on an event field says: this field is a column of that event's
table, of type LowCardinality(String). A field without a `Column` is not stored.
`schemas.clickhouse.tables` derives each table's columns and rows from these, and a test
compares them with the tables the migrations create. Stdlib only: every producer imports
the event models, and only ingest needs the Arrow side.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BOOL",
    "FLOAT",
    "FLOATS",
    "INT",
    "INT32",
    "INT32S",
    "LOW",
    "MONEY",
    "NULL_FLOAT",
    "NULL_INT",
    "NULL_INT32",
    "NULL_TS",
    "STRING",
    "STRINGS",
    "STR_MAP",
    "TS",
    "UINT16",
    "Column",
]


@dataclass(frozen=True, slots=True)
class Column:
    """A column of `type`; `name` if it differs from the field's.

    `item`: the field is a list of sub-models and this column holds that attribute of each
    (requests.tool_call_names <- tool_calls[].name); one field may carry several.
    `json`: the value is stored as JSON text (free-form evidence).
    """

    type: str
    name: str | None = None
    item: str | None = None
    json: bool = False

    def flattening(self, item: str, name: str) -> Column:
        """This column type holding attribute `item` of each element, named `name`."""
        return Column(self.type, name=name, item=item)


STRING = Column("String")
LOW = Column("LowCardinality(String)")
TS = Column("DateTime64(3, 'UTC')")
NULL_TS = Column("Nullable(DateTime64(3, 'UTC'))")
FLOAT = Column("Float64")
NULL_FLOAT = Column("Nullable(Float64)")
INT = Column("Int64")
NULL_INT = Column("Nullable(Int64)")
INT32 = Column("Int32")
NULL_INT32 = Column("Nullable(Int32)")
UINT16 = Column("UInt16")
BOOL = Column("Bool")
MONEY = Column("Decimal(38, 18)")
STRINGS = Column("Array(String)")
INT32S = Column("Array(Int32)")
FLOATS = Column("Array(Float64)")
STR_MAP = Column("Map(String, String)")
