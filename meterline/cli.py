"""The `meterline` command line (ARCHITECTURE §5).

Each verb is a thin layer: it builds `Settings` and calls one entry point. Service
packages are imported lazily so `meterline --help` stays fast and each process loads only
what it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from meterline.settings import Settings

__all__ = ["main"]


def _cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from meterline.runtime import run_up

    return run_up(settings, demo=args.demo)


def _cmd_gateway(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.server import serve

    serve(settings)
    return 0


def _cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.server import serve

    serve(settings)
    return 0


def _cmd_processors(args: argparse.Namespace, settings: Settings) -> int:
    from processors.worker import serve

    serve(settings)
    return 0


def _cmd_dashboard(args: argparse.Namespace, settings: Settings) -> int:
    import subprocess

    import dashboards

    app = Path(dashboards.__file__).parent / "app.py"
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.address",
        settings.host,
        "--server.port",
        str(settings.dashboard_port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    return subprocess.call(command)


def _cmd_mock_provider(args: argparse.Namespace, settings: Settings) -> int:
    from meterline.mock_provider import serve

    serve(settings.host, args.port or settings.mock_provider_port, latency_ms=args.latency_ms)
    return 0


def _cmd_schemas_export(args: argparse.Namespace, settings: Settings) -> int:
    from schemas.export import export_json_schemas

    written = export_json_schemas(Path(args.directory))
    for path in written:
        print(path)
    print(f"wrote {len(written)} JSON Schema files to {args.directory}", file=sys.stderr)
    return 0


def _cmd_warehouse_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from meterline import warehouse

    client = warehouse.connect(settings)
    applied = warehouse.migrate(client, settings.clickhouse_database)
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none (up to date)'}")
    return 0


def _cmd_warehouse_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from meterline import warehouse

    client = warehouse.connect(settings)
    warehouse.migrate(client, settings.clickhouse_database)
    rows = warehouse.rebuild_aggregates(client, settings.clickhouse_database)
    print(f"rebuilt spend_daily from raw costs: {rows} aggregate row(s)")
    return 0


def _cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from meterline.simulate import SimulationConfig, run_simulation

    config = SimulationConfig(
        scenario=args.scenario,
        rate=args.rate,
        duration_s=args.duration,
        seed=args.seed,
        gateway_url=args.gateway_url or settings.resolved_gateway_url,
    )
    return run_simulation(settings, config)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meterline",
        description="Watch, cost and police LLM traffic. Settings: METERLINE_* environment "
        "variables and ./meterline.yaml (or METERLINE_CONFIG).",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    up = verbs.add_parser(
        "up", help="start the embedded stack (broker, ingest, processors, gateway)"
    )
    up.add_argument("--demo", action="store_true", help="also start the mock provider and traffic")
    up.set_defaults(handler=_cmd_up)

    for name, handler, text in (
        ("gateway", _cmd_gateway, "run the OpenAI-compatible proxy (port 8080)"),
        ("ingest", _cmd_ingest, "run the Kafka -> ClickHouse sink and read API (port 4318)"),
        ("processors", _cmd_processors, "run the Faust stream processors (web port 6066)"),
        ("dashboard", _cmd_dashboard, "run the Streamlit dashboards (port 8501)"),
    ):
        verbs.add_parser(name, help=text).set_defaults(handler=handler)

    mock = verbs.add_parser("mock-provider", help="run the mock OpenAI-compatible provider (9100)")
    mock.add_argument("--port", type=int, default=None)
    mock.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request")
    mock.set_defaults(handler=_cmd_mock_provider)

    schemas = verbs.add_parser("schemas", help="event schemas").add_subparsers(
        dest="schemas_verb", required=True, metavar="ACTION"
    )
    export = schemas.add_parser("export", help="write a JSON Schema file per event model")
    export.add_argument("directory")
    export.set_defaults(handler=_cmd_schemas_export)

    warehouse = verbs.add_parser("warehouse", help="ClickHouse maintenance").add_subparsers(
        dest="warehouse_verb", required=True, metavar="ACTION"
    )
    warehouse.add_parser("migrate", help="apply pending migrations").set_defaults(
        handler=_cmd_warehouse_migrate
    )
    warehouse.add_parser(
        "rebuild-aggregates", help="rebuild spend_daily from the raw cost rows"
    ).set_defaults(handler=_cmd_warehouse_rebuild)

    simulate = verbs.add_parser("simulate", help="send simulated traffic through the gateway")
    simulate.add_argument("scenario", choices=["normal"])
    simulate.add_argument("--rate", type=float, default=5.0, help="requests per second")
    simulate.add_argument("--duration", type=float, default=60.0, help="seconds (0: forever)")
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument("--gateway-url", default=None)
    simulate.set_defaults(handler=_cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        return handler(args, Settings())
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
