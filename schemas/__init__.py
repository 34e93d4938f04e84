"""Meterline's single source of truth: event models, topic names, ClickHouse DDL."""

__all__: list[str] = []
