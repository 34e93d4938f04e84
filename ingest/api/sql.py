"""A WHERE clause built from conditions: column names come from the caller's code (never
from a request), every value is a query parameter."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

__all__ = ["Where"]


class Where:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.params: dict[str, Any] = {}

    def _bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return name

    def eq(self, column: str, value: Any, ch_type: str = "String") -> Where:
        """`column = value`; nothing when value is None."""
        if value is not None:
            self.parts.append(f"{column} = {{{self._bind(value)}:{ch_type}}}")
        return self

    def any_of(self, column: str, values: list[str] | None) -> Where:
        if values:
            self.parts.append(f"{column} IN {{{self._bind(values)}:Array(String)}}")
        return self

    def time_range(
        self,
        column: str,
        start: datetime | date | None,
        end: datetime | date | None,
        ch_type: str = "DateTime64(3, 'UTC')",
    ) -> Where:
        """start <= column < end, either bound optional."""
        if start is not None:
            self.parts.append(f"{column} >= {{{self._bind(start)}:{ch_type}}}")
        if end is not None:
            self.parts.append(f"{column} < {{{self._bind(end)}:{ch_type}}}")
        return self

    def add(self, condition: str) -> Where:
        """A fixed condition written in code (no request value in it)."""
        self.parts.append(condition)
        return self

    @property
    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.parts) if self.parts else ""
