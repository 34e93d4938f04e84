"""Meterline's single source of truth: every contract between services.

- `events` (models of every event and control record), `topics` (names, enforcement and
  control keys), `clickhouse` (DDL; each field's column declared next to it, and the
  tables, rows and columnar decoding derived from those);
- `api` (the HTTP APIs' answers: `api.read`, served by ingest, parsed by the clients);
- `subjects` (the subject grammar, attribution -> subjects), `policies` (policy kinds and
  modes), `enforcement` (actions, decision sources), `budgets` (periods, hard-limit
  actions, states), `error_types` (refusals the detectors must not learn from),
  `sources` (who produced an event), `credentials`, `signature`, `spend`, `ids`,
  `budget_spend` (a cost's spend per budget subject on the internal budget-spend topic).

Services import these and never spell a contract themselves
(tests/unit/schemas/test_contract_boundaries.py).
"""

__all__: list[str] = []
