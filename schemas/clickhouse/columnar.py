"""The fast path: decoded JSON objects straight into Arrow columns, checked per column.

Building a pydantic model per event, then a row tuple, then transposing rows into Arrow
columns cost ~20 us per request event, most of the sink's time. Here each column is read
from the decoded dicts with one comprehension, its values are type-checked per column,
and Arrow converts it (timestamps and money are parsed by Arrow's C++ casts).

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
from operator import itemgetter
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pyarrow as pa
import pyarrow.compute as pc
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

    @property
    def arrow_checks_type(self) -> bool:
        # Arrow's str and bool conversions accept only str / bool (and None, counted
        # after); its int and float ones accept 1.5 and True, so those are checked here.
        return self.arrow_type is not None and (
            self.pattern is not None or self.allowed - {_NONE} <= {str, bool}
        )


class ColumnDecoder:
    """Decodes a list of JSON objects of one model into an Arrow table of `spec`."""

    def __init__(self, spec: TableSpec, columns: list[_Column], unstored: list[_Column]) -> None:
        self.spec = spec
        self._columns = columns
        self._unstored = unstored
        checked = [*columns, *unstored]
        self._defaults = {column.key: column.default for column in checked}
        self._values = itemgetter(*(column.key for column in checked))
        self._typed = [not column.arrow_checks_type for column in checked]

    def decode(self, objects: list[dict[str, Any]]) -> tuple[pa.Table | None, list[int]]:
        """The table of the objects that pass every check, and the indices of the others.

        If Arrow still refuses a checked column (an out-of-range int, a 30 February), the
        whole list is handed back: this is rare and the slow path finds the culprit.
        """
        # C-level reads and transpose. Producers serialize every field, so a missing key
        # (whose default is merged in) is the exception.
        try:
            rows = list(map(self._values, objects))
        except KeyError:
            rows = list(map(self._values, map(self._defaults.__or__, objects)))
        columns = list(zip(*rows, strict=True))
        checked = [*self._columns, *self._unstored]
        arrays = [
            _array(column, values, typed)
            for column, values, typed in zip(checked, columns, self._typed, strict=True)
        ]
        bad = sorted(
            {
                i
                for column, values, array in zip(checked, columns, arrays, strict=True)
                if array is None
                for i in _failures(column, values)
            }
        )
        if bad:
            skip = set(bad)
            keep = [i for i in range(len(objects)) if i not in skip]
            if not keep:
                return None, bad
            arrays = [
                _array(column, [values[i] for i in keep], True)
                for column, values in zip(checked, columns, strict=True)
            ]
        stored = arrays[: len(self._columns)]
        if any(array is None for array in stored):
            return None, list(range(len(objects)))
        return pa.Table.from_arrays(stored, schema=self.spec.schema), bad


_CHECKED = object()  # what `_array` returns for a field that is checked but not stored


def _array(column: _Column, values: Sequence[Any], typed: bool) -> pa.Array | object | None:
    """The column as Arrow if every value passes (`_CHECKED` if not stored), else None.

    `typed`: check Python types first (always done when finding the failing rows).
    """
    if typed and not set(map(type, values)) <= column.allowed:
        return None
    if not _value_checks(column, values):
        return None
    if column.arrow_type is None:
        return _CHECKED
    try:
        if column.empty_only:
            return pa.array([[]] * len(values), column.arrow_type)
        array = pa.array(values, STR if column.pattern is not None else column.arrow_type)
        if array.null_count and _NONE not in column.allowed:
            return None
        if column.items_str and _nested(array).null_count:
            return None
        if column.pattern is not None:
            matched = pc.match_substring_regex(array, column.pattern)
            if not pc.all(pc.fill_null(matched, True)).as_py():
                return None
            array = pc.cast(array, column.arrow_type)
        if column.null_as_empty and array.null_count:
            array = pc.fill_null(array, "")
    except (pa.ArrowException, OverflowError, ValueError):
        return None
    return array


def _nested(array: pa.Array) -> pa.Array:
    return array.items if isinstance(array, pa.MapArray) else array.values


def _value_checks(column: _Column, values: Sequence[Any]) -> bool:
    if column.literals is not None and not set(values) <= column.literals:
        return False
    if column.empty_only and any(values):
        return False
    minimum = column.min_value
    return minimum is None or min(values, default=minimum) >= minimum


def _failures(column: _Column, values: Sequence[Any]) -> list[int]:
    """Rare: the rows whose value fails, checked one at a time."""
    return [i for i, value in enumerate(values) if _array(column, [value], True) is None]


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
