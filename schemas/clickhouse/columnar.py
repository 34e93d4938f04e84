"""The fast path: JSON messages straight into Arrow columns, checked as they are parsed.

Building a pydantic model per event, then a row tuple, then transposing rows into Arrow
columns cost ~20 us per request event, most of the sink's time. Here msgspec parses each
message into a struct whose field types are as narrow as the columns' checks (strict: no
"5" for an int, no 1 for a bool, no missing required field), the structs are transposed
into columns at C speed (`astuple` + `zip`), and Arrow converts each column (timestamps
and money are matched against a pattern, then parsed by Arrow's C++ casts). Measured on
the 2-vCPU dev machine, CPU per event: request ~8 us, cost ~5.6 us (was ~15 and ~9-12
with orjson dicts and per-column type checks in Python), bench/README.md.

The check is derived from the pydantic models (schemas/events/v1.py stays the only
definition of an event) and is never more lenient than pydantic: a value of an unexpected
type or shape sends its row to the slow path (`Router.route`: full pydantic validation),
which either accepts it (pydantic's lax coercions) or dead-letters it with pydantic's
precise message. A model using anything this module does not understand (validators,
constraints, aliases) gets no fast path at all.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
from msgspec.structs import astuple
from pydantic import BaseModel, PlainSerializer

from schemas.clickhouse import column as ch
from schemas.clickhouse.column import Column
from schemas.clickhouse.tables import TableSpec, arrow_type
from schemas.events.v1 import Event, Money, Timestamp

__all__ = ["ColumnDecoder", "compile_decoder"]

STR = pa.string()
TS = arrow_type(ch.TS.type)
MONEY = arrow_type(ch.MONEY.type)
_MISSING = object()  # a required field, or one whose default comes from a factory
_NONE = type(None)
# Strings Arrow parses to exactly the instant/amount pydantic would: ISO-8601 with an
# explicit zone and at most milliseconds; decimals that fit Decimal(38, 18) unrounded.
_TS_PATTERN = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?(Z|[+-]\d\d:\d\d)$"
_MONEY_PATTERN = r"^-?\d{1,20}(\.\d{1,18})?$"
# What Timestamp and Money add to validation (serializers only matter on output).
_TIMESTAMP_META = tuple(m for m in Timestamp.__metadata__ if not isinstance(m, PlainSerializer))
_MONEY_META = tuple(m for m in Money.__metadata__ if not isinstance(m, PlainSerializer))


@dataclass(frozen=True, slots=True)
class _Column:
    key: str  # the JSON field read
    default: Any
    allowed: frozenset[type]
    arrow_type: pa.DataType | None  # None: a field checked but not stored (event_type)
    literals: frozenset[str] | None = None
    pattern: str | None = None  # strings to match before an Arrow cast
    items_str: bool = False  # dict values / list items must be str
    empty_only: bool = False  # list of sub-models: only [] on the fast path
    null_as_empty: bool = False  # `str | None` columns store None as ''
    min_value: int | None = None


class ColumnDecoder:
    """Decodes a list of JSON messages of one model into an Arrow table of `spec`."""

    def __init__(self, spec: TableSpec, columns: list[_Column], unstored: list[_Column]) -> None:
        self.spec = spec
        self._columns = columns
        self._unstored = unstored
        checked = [*columns, *unstored]
        # One msgspec field per JSON key (flattened columns share theirs), checked as it is
        # parsed: msgspec is strict (no "5" for an int, no 1 for a bool, no 1.0 for an int).
        keys = list(dict.fromkeys(column.key for column in checked))
        struct = msgspec.defstruct(
            f"_{spec.name}_row",
            [_struct_field(next(c for c in checked if c.key == key)) for key in keys],
            kw_only=True,
            gc=False,  # acyclic, and a batch holds 10,000s of them
        )
        self._decode = msgspec.json.Decoder(struct).decode
        self._index = [keys.index(column.key) for column in checked]
        # Columns msgspec's type check leaves something to do for (a pattern, an Arrow
        # conversion); the rest of `unstored` is fully checked by then.
        self._pending = [
            (column, i)
            for column, i in zip(checked, self._index, strict=True)
            if column.arrow_type is not None or column.pattern is not None
        ]

    def decode(self, values: Sequence[bytes | None]) -> tuple[pa.Table | None, list[int]]:
        """The table of the messages that pass every check, and the indices of the others.

        If Arrow still refuses a checked column (an out-of-range int, a 30 February), the
        rows at fault are found one value at a time: this is rare.
        """
        decode = self._decode
        try:
            # Measured (CPU): ~3.0-3.8 us per request event, ~1.8 per cost event (orjson
            # to dicts: ~5.3-6.4 and ~3.3, then ~3 us more to read and check the columns).
            structs = [decode(value) for value in values]  # type: ignore[arg-type]
            failed: list[int] = []
        except (msgspec.MsgspecError, TypeError):
            structs, failed = [], []
            for i, value in enumerate(values):
                try:
                    structs.append(decode(value))  # type: ignore[arg-type]
                except (msgspec.MsgspecError, TypeError):  # TypeError: a None value
                    failed.append(i)
            if not structs:
                return None, failed
        fields = list(zip(*map(astuple, structs), strict=True))
        arrays = [_array(column, fields[i]) for column, i in self._pending]
        bad = sorted(
            {
                i
                for (column, field), array in zip(self._pending, arrays, strict=True)
                if array is None
                for i in _failures(column, fields[field])
            }
        )
        if bad:
            skip = set(bad)
            keep = [i for i in range(len(structs)) if i not in skip]
            if keep:
                arrays = [
                    _array(column, [fields[field][i] for i in keep])
                    for column, field in self._pending
                ]
            else:
                arrays = []
            # Indices of `structs` back to indices of `values`.
            if failed:
                survivors = [i for i in range(len(values)) if i not in set(failed)]
                bad = [survivors[i] for i in bad]
            failed = sorted([*failed, *bad])
            if not keep:
                return None, failed
        stored = [
            array
            for (column, _), array in zip(self._pending, arrays, strict=True)
            if column.arrow_type is not None
        ]
        if any(array is None for array in stored):
            return None, list(range(len(values)))
        return pa.Table.from_arrays(stored, schema=self.spec.schema), failed


def _struct_field(column: _Column) -> tuple[str, Any] | tuple[str, Any, Any]:
    """The msgspec field of `column`: its type as narrow as the column's checks."""
    if column.literals is not None:
        kind: Any = Literal[tuple(sorted(column.literals - {None}))]  # type: ignore[misc]
    elif column.empty_only:
        kind = Annotated[list[Any], msgspec.Meta(max_length=0)]
    else:
        bases = column.allowed - {_NONE}
        base = float if float in bases else next(iter(bases))
        if base is float:  # JSON ints are accepted and converted, as pydantic does
            kind = float
        elif column.items_str:
            kind = dict[str, str] if base is dict else list[str]
        elif column.min_value is not None:
            kind = Annotated[int, msgspec.Meta(ge=column.min_value)]
        else:
            kind = base
    if _NONE in column.allowed:
        kind = kind | None
    default = column.default
    if default is _MISSING or (default is not None and type(default) not in column.allowed):
        # Required, or a default of another type (Decimal(0) for money): pydantic decides.
        return (column.key, kind)
    if isinstance(default, list | dict):
        return (column.key, kind, msgspec.field(default_factory=type(default)))
    return (column.key, kind, default)


_CHECKED = object()  # what `_array` returns for a field that is checked but not stored


def _array(column: _Column, values: Sequence[Any]) -> pa.Array | object | None:
    """The column as Arrow if every value passes (`_CHECKED` if not stored), else None.

    The values' Python types were checked by msgspec as they were parsed.
    """
    if column.arrow_type is None and column.pattern is None:
        return _CHECKED
    try:
        if column.empty_only:
            return pa.array([[]] * len(values), column.arrow_type)
        array = pa.array(values, STR if column.pattern is not None else column.arrow_type)
        if column.pattern is not None:
            matched = pc.match_substring_regex(array, column.pattern)
            if not pc.all(pc.fill_null(matched, True)).as_py():
                return None
            if column.arrow_type is None:
                return _CHECKED
            array = pc.cast(array, column.arrow_type)
        if column.null_as_empty and array.null_count:
            array = pc.fill_null(array, "")
    except (pa.ArrowException, OverflowError, ValueError):
        return None
    return array


def _failures(column: _Column, values: Sequence[Any]) -> list[int]:
    """Rare: the rows whose value fails, checked one at a time."""
    return [i for i, value in enumerate(values) if _array(column, [value]) is None]


def compile_decoder(model: type[Event], spec: TableSpec) -> ColumnDecoder | None:
    """A decoder for `model` into `spec`, or None if some column needs the slow path.

    Each column reads the model field `spec.sources` names (schemas.clickhouse.tables
    derives both from the model). A column that flattens a list of sub-models
    (requests.tool_call_names <- tool_calls[].name): the fast path takes only events where
    the list is empty.
    """
    if (
        not spec.sources
        or model.model_post_init is not Event.model_post_init
        or model.__pydantic_decorators__.field_validators
        or model.__pydantic_decorators__.model_validators
    ):
        return None
    columns: list[_Column] = []
    for (_, arrow), (field, item) in zip(spec.columns, spec.sources, strict=True):
        column = _column(model, field, arrow, flattened=item is not None)
        if column is None:
            return None
        columns.append(column)
    # pydantic validates every field, stored or not: so does the fast path.
    read = {column.key for column in columns}
    unstored = [_column(model, name, None) for name in model.model_fields if name not in read]
    if any(column is None for column in unstored):
        return None
    return ColumnDecoder(spec, columns, unstored)  # type: ignore[arg-type]


def _column(
    model: type[BaseModel], name: str, arrow_type: pa.DataType | None, *, flattened: bool = False
) -> _Column | None:
    field = model.model_fields.get(name)
    if field is None or field.alias is not None or field.validation_alias is not None:
        return None
    if any(isinstance(m, Column) and m.json for m in field.metadata):
        return None  # stored as JSON text: the slow path encodes it
    if field.is_required() or field.default_factory is not None:
        default: Any = _MISSING
    else:
        default = field.default
    annotation, metadata, optional = _unwrap(field.annotation, tuple(field.metadata))
    allowed = {_NONE} if optional else set()
    base = dict(key=name, default=default, arrow_type=arrow_type)
    origin, args = get_origin(annotation), get_args(annotation)
    if flattened:
        if origin is list and args and issubclass(args[0], BaseModel):
            return _Column(**base, allowed=frozenset({list}), empty_only=True)
        return None
    if metadata == _TIMESTAMP_META and annotation is datetime and arrow_type in (TS, None):
        pattern = _TS_PATTERN
    elif metadata == _MONEY_META and annotation is Decimal and arrow_type in (MONEY, None):
        pattern = _MONEY_PATTERN
    elif metadata:
        return None  # constraints or validators this module does not know
    else:
        pattern = None
    if pattern is not None:
        return _Column(**base, allowed=frozenset(allowed | {str}), pattern=pattern)
    if annotation is str or origin is Literal:
        literals = frozenset(args) if origin is Literal else None
        if literals is not None:
            if not all(type(v) is str for v in literals):
                return None
            if optional:
                literals = literals | {None}
        return _Column(
            **base, allowed=frozenset(allowed | {str}), literals=literals, null_as_empty=optional
        )
    if annotation is bool:
        return _Column(**base, allowed=frozenset(allowed | {bool}))
    if annotation is int:
        # Event.model_post_init (checked unchanged above) rejects schema_version < 1.
        minimum = 1 if name == "schema_version" else None
        return _Column(**base, allowed=frozenset(allowed | {int}), min_value=minimum)
    if annotation is float:
        return _Column(**base, allowed=frozenset(allowed | {int, float}))
    if origin in (dict, list) and all(arg is str for arg in args):
        return _Column(**base, allowed=frozenset(allowed | {origin}), items_str=True)
    return None


def _unwrap(annotation: Any, metadata: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...], bool]:
    """(type, metadata, optional) of `X`, `X | None` and `Annotated[X, ...] | None`."""
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not _NONE]
        if len(args) != 1:
            return object, metadata, False
        optional, annotation = True, args[0]
    if get_origin(annotation) is Annotated:
        metadata = metadata + tuple(annotation.__metadata__)
        annotation = annotation.__origin__
    # Serializers only matter on output; Column declarations only to the tables.
    kept = tuple(m for m in metadata if not isinstance(m, PlainSerializer | Column))
    return annotation, kept, optional
