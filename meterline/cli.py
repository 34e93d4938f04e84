"""The `meterline` command line (ARCHITECTURE §5).

Each verb is a thin layer: it builds `Settings` and calls one entry point. Service
packages are imported lazily so `meterline --help` stays fast and each process loads only
what it runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meterline.money import usd
from meterline.settings import ConfigError, Settings, load_settings
from schemas.budgets import BUDGET_PERIODS, HARD_LIMIT_ACTIONS

if TYPE_CHECKING:  # the client (and httpx) load only for the admin verbs
    from meterline.clients import AdminClient, ClientError

__all__ = ["main"]


def _with_workers(
    settings: Settings,
    *,
    processors: int | None = None,
    gateways: int | None = None,
    sinks: int | None = None,
) -> Settings:
    """`settings` with the given process counts per service (None: as configured)."""
    update: dict[str, Any] = {}
    if processors is not None:
        update["processors"] = settings.processors.model_copy(update={"workers": processors})
    if gateways is not None:
        update["gateway"] = settings.gateway.model_copy(update={"workers": gateways})
    if sinks is not None:
        sink = settings.ingest.sink.model_copy(update={"workers": sinks})
        update["ingest"] = settings.ingest.model_copy(update={"sink": sink})
    return settings.model_copy(update=update)


def _workers_arg(text: str) -> int:
    from meterline.settings import MAX_WORKERS

    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of processes") from None
    if not 1 <= count <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_WORKERS}, not {count}")
    return count


def _log_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from meterline.runtime import run_up

    settings = _with_workers(
        settings, processors=args.processors, gateways=args.gateways, sinks=args.sinks
    )
    return run_up(
        settings,
        demo=args.demo,
        mock_provider=args.mock_provider,
        dashboard=not args.no_dashboard,
    )


def _cmd_gateway(args: argparse.Namespace, settings: Settings) -> int:
    if args.worker is None and settings.gateway.workers > 1:
        from meterline.runtime import run_workers

        return run_workers(settings, "gateway", log=_log_stderr)
    from gateway.server import serve

    serve(settings, worker=args.worker)
    return 0


def _cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    from ingest.server import serve

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    serve(settings)
    return 0


def _cmd_processors(args: argparse.Namespace, settings: Settings) -> int:
    if args.worker is None and settings.processors.workers > 1:
        from meterline.runtime import run_workers

        return run_workers(settings, "processors", log=_log_stderr)
    from processors.worker import serve

    serve(settings, worker=args.worker)
    return 0


def _cmd_dashboard(args: argparse.Namespace, settings: Settings) -> int:
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
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "viewer",
    ]
    # Become Streamlit (no wrapper process): a supervisor's SIGTERM then stops the server
    # itself instead of orphaning it.
    os.execv(sys.executable, command)
    return 0  # not reached


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
        labels_path=Path(args.labels) if args.labels else None,
        keys_file=Path(args.keys_file) if args.keys_file else None,
    )
    return run_simulation(settings, config)


def _cmd_eval_detections(args: argparse.Namespace, settings: Settings) -> int:
    from meterline.evaluate.run import EvalConfig, run_draws, run_eval

    if not args.stack:
        return run_draws(settings, args.seeds, args.draws)
    config = EvalConfig(
        seed=args.seed,
        duration_s=args.duration,
        rate=args.rate,
        labels_path=Path(args.labels) if args.labels else None,
    )
    return run_eval(settings, config, args.gateway_url)


# --- admin verbs: thin clients of the gateway admin API (ARCHITECTURE §9) -----------------


class _AdminError(Exception):
    """Something the user must fix; the message says what."""


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration_s(text: str) -> float:
    """'90', '90s', '15m', '2h', '1d' -> seconds."""
    unit = text[-1:].lower()
    number = text[:-1] if unit in _DURATION_UNITS else text
    try:
        seconds = float(number) * _DURATION_UNITS.get(unit, 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a duration like 30s, 15m, 2h or 1d"
        ) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("the duration must be positive")
    return seconds


def _actor() -> str:
    import getpass
    import socket

    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


def _admin(settings: Settings) -> AdminClient:
    from meterline.clients import AdminClient

    token = settings.resolved_admin_token
    if token is None:
        raise _AdminError(
            "no admin token: set METERLINE_ADMIN_TOKEN to the token the gateway was started "
            f"with (`meterline up` keeps its generated one in {settings.admin_token_file})"
        )
    # The token authorizes; the actor (user@host) names who, for the audit trail.
    return AdminClient(settings.resolved_gateway_url, token.get_secret_value(), actor=_actor())


def _explain(error: ClientError, url: str) -> str:
    """What the user must do, from what the admin client saw."""
    from meterline.clients import ApiError, ApiUnreachable

    if not isinstance(error, ApiError):  # no answer at all
        reason = error.reason if isinstance(error, ApiUnreachable) else str(error)
        return (
            f"cannot reach the gateway at {url} ({reason}). Start it with "
            "`meterline gateway` or `meterline up`, or point METERLINE_GATEWAY_URL at it."
        )
    if error.status == 401:
        return (
            f"the gateway at {url} refused the admin token ({error.message}): make "
            "METERLINE_ADMIN_TOKEN match the gateway's"
        )
    if error.status == 503:
        return f"the gateway could not make the change: {error.message}"
    return f"the gateway answered {error.status}: {error.message}"


def _admin_verb(
    run: Callable[[argparse.Namespace, AdminClient], None],
) -> Callable[..., int]:
    def handler(args: argparse.Namespace, settings: Settings) -> int:
        from meterline.clients import ClientError

        try:
            with _admin(settings) as admin:
                try:
                    run(args, admin)
                except ClientError as exc:
                    raise _AdminError(_explain(exc, admin.base_url)) from None
        except _AdminError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0

    return handler


def _keys_create(args: argparse.Namespace, admin: AdminClient) -> None:
    created = admin.create_key(
        org=args.org,
        team=args.team,
        project=args.project,
        user=args.user,
        models=[m for item in args.models for m in item.split(",") if m] if args.models else None,
        rpm=args.rpm,
        tpm=args.tpm,
        budget_ids=args.budget or None,
    )
    print(f"key_id: {created['key_id']}")
    print(f"key:    {created['key']}")
    print("The key is shown once; store it now.", file=sys.stderr)


def _keys_list(args: argparse.Namespace, admin: AdminClient) -> None:
    keys = admin.list_keys()
    for key in keys:
        limits = f"rpm={key['rpm'] or '-'} tpm={key['tpm'] or '-'}"
        where = "/".join(part for part in (key["org"], key["team"], key["project"]) if part)
        models = ",".join(key["models"]) if key["models"] is not None else "*"
        revoked = (
            f"  REVOKED {key.get('revoked_at') or ''} by {key.get('revoked_by') or '?'}"
            if key.get("revoked")
            else ""
        )
        print(
            f"{key['key_id']}  {where}  user={key['user'] or '-'}  models={models}  {limits}"
            + revoked
        )
    print(f"{len(keys)} key(s)", file=sys.stderr)


def _keys_revoke(args: argparse.Namespace, admin: AdminClient) -> None:
    admin.revoke_key(args.key_id)
    print(f"revoked {args.key_id}")


def _ingest_tokens_create(args: argparse.Namespace, admin: AdminClient) -> None:
    created = admin.create_ingest_token(
        org=args.org, team=args.team, project=args.project, name=args.name
    )
    print(f"token_id: {created['token_id']}")
    print(f"token:    {created['token']}")
    print(
        "The token is shown once; store it now. Exporters send it as "
        "OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>",
        file=sys.stderr,
    )


def _ingest_tokens_list(args: argparse.Namespace, admin: AdminClient) -> None:
    tokens = admin.list_ingest_tokens()
    for token in tokens:
        where = "/".join(part for part in (token["org"], token["team"], token["project"]) if part)
        print(f"{token['token_id']}  {where}  {token['name'] or '-'}")
    print(f"{len(tokens)} ingest token(s)", file=sys.stderr)


def _ingest_tokens_revoke(args: argparse.Namespace, admin: AdminClient) -> None:
    admin.revoke_ingest_token(args.token_id)
    print(f"revoked {args.token_id}")


def _budgets_set(args: argparse.Namespace, admin: AdminClient) -> None:
    budget = admin.set_budget(
        args.subject,
        period=args.period,
        limit_usd=args.limit_usd,
        soft_pct=args.soft_pct,
        action_on_hard=args.action,
        throttle_rpm=args.throttle_rpm,
        timezone=args.timezone,
    )
    print(
        f"budget {budget['budget_id']}: {budget['subject']} {usd(budget['limit_usd'])} per "
        f"{budget['period']} ({budget['timezone']}), soft at {budget['soft_pct']}%, "
        f"hard -> {budget['action_on_hard']}"
    )


def _budget_line(budget: dict[str, Any]) -> str:
    """`$10.00/day  hard->block  spent $0.0021 (ok)`: the gateway's view, its own spend
    since the processors' last state included (so a budget it just refused reads hard)."""
    line = f"{usd(budget['limit_usd'])}/{budget['period']}  hard->{budget['action_on_hard']}"
    state = budget.get("state")
    if not state:
        return f"{line}  no spend yet"
    spent = Decimal(state["spent_usd"] or 0) + Decimal(repr(state.get("local_estimate_usd") or 0))
    return f"{line}  spent {usd(spent)} ({state['status']})"


def _budgets_list(args: argparse.Namespace, admin: AdminClient) -> None:
    budgets = admin.list_budgets()
    for budget in budgets:
        print(f"{budget['budget_id']}  {budget['subject']}  {_budget_line(budget)}")
    print(f"{len(budgets)} budget(s)", file=sys.stderr)


def _block(args: argparse.Namespace, admin: AdminClient) -> None:
    decision = admin.block(args.subject, args.reason, for_seconds=args.duration)
    until = f" until {decision['expires_at']}" if decision.get("expires_at") else ""
    print(f"blocked {decision['subject']}{until}: {decision['reason']}")


def _unblock(args: argparse.Namespace, admin: AdminClient) -> None:
    lifted = admin.lift(args.subject)
    was = lifted.get("was")
    print(f"unblocked {args.subject}" + ("" if was else " (no active decision was known)"))


def _add_admin_verbs(verbs: Any) -> None:
    keys = verbs.add_parser("keys", help="virtual keys (gateway admin API)").add_subparsers(
        dest="keys_verb", required=True, metavar="ACTION"
    )
    create = keys.add_parser("create", help="create a virtual key (the secret is shown once)")
    create.add_argument("--org", required=True)
    create.add_argument("--team", default="")
    create.add_argument("--project", default="")
    create.add_argument("--user", default="")
    create.add_argument("--models", action="append", help="allowed models, e.g. 'gpt-4o*'")
    create.add_argument("--rpm", type=int, default=None, help="requests per minute")
    create.add_argument("--tpm", type=int, default=None, help="tokens per minute")
    create.add_argument("--budget", action="append", help="budget id the key counts against")
    create.set_defaults(handler=_admin_verb(_keys_create))
    keys.add_parser("list", help="list virtual keys").set_defaults(handler=_admin_verb(_keys_list))
    revoke = keys.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=_admin_verb(_keys_revoke))

    tokens = verbs.add_parser(
        "ingest-tokens", help="OTLP ingest credentials (gateway admin API)"
    ).add_subparsers(dest="ingest_tokens_verb", required=True, metavar="ACTION")
    create = tokens.add_parser("create", help="create an ingest token (shown once)")
    create.add_argument("--org", required=True)
    create.add_argument("--team", default="")
    create.add_argument("--project", default="")
    create.add_argument("--name", default="", help="what the token is for")
    create.set_defaults(handler=_admin_verb(_ingest_tokens_create))
    tokens.add_parser("list", help="list ingest tokens").set_defaults(
        handler=_admin_verb(_ingest_tokens_list)
    )
    revoke = tokens.add_parser("revoke", help="revoke an ingest token")
    revoke.add_argument("token_id")
    revoke.set_defaults(handler=_admin_verb(_ingest_tokens_revoke))

    budgets = verbs.add_parser("budgets", help="spend budgets").add_subparsers(
        dest="budgets_verb", required=True, metavar="ACTION"
    )
    bset = budgets.add_parser("set", help="create or change the budget of a subject and period")
    bset.add_argument("subject", help="e.g. team:acme/ml, org:acme, key:key_...")
    bset.add_argument("--period", choices=BUDGET_PERIODS, default="month")
    bset.add_argument("--limit-usd", required=True)
    bset.add_argument("--soft-pct", type=float, default=80.0)
    bset.add_argument("--action", choices=HARD_LIMIT_ACTIONS, default="block")
    bset.add_argument("--throttle-rpm", type=int, default=None)
    bset.add_argument("--timezone", default="UTC")
    bset.set_defaults(handler=_admin_verb(_budgets_set))
    budgets.add_parser("list", help="list budgets and their latest state").set_defaults(
        handler=_admin_verb(_budgets_list)
    )

    block = verbs.add_parser("block", help="block a subject on every gateway")
    block.add_argument("subject", help="e.g. key:key_..., session:..., team:acme/ml")
    block.add_argument("--reason", required=True)
    block.add_argument("--for", dest="duration", type=_duration_s, default=None, help="e.g. 2h")
    block.set_defaults(handler=_admin_verb(_block))
    unblock = verbs.add_parser("unblock", help="lift a subject's block or throttle")
    unblock.add_argument("subject")
    unblock.set_defaults(handler=_admin_verb(_unblock))


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
    up.add_argument(
        "--mock-provider", action="store_true", help="also start the mock provider (no traffic)"
    )
    up.add_argument("--no-dashboard", action="store_true", help="do not start the dashboards")
    for flag, text in (
        ("--processors", "Faust workers (METERLINE_PROCESSORS_WORKERS)"),
        ("--gateways", "gateway processes on one port (METERLINE_GATEWAY_WORKERS)"),
        ("--sinks", "sink consumers in ingest (METERLINE_SINK_WORKERS)"),
    ):
        up.add_argument(flag, type=_workers_arg, default=None, metavar="N", help=text)
    up.set_defaults(handler=_cmd_up)

    for name, handler, text in (
        ("gateway", _cmd_gateway, "run the OpenAI-compatible proxy (port 8080)"),
        ("processors", _cmd_processors, "run the Faust stream processors (web port 6066)"),
    ):
        service = verbs.add_parser(
            name, help=f"{text}; METERLINE_{name.upper()}_WORKERS > 1 runs that many"
        )
        service.add_argument(
            "--worker",
            type=int,
            default=None,
            metavar="I",
            help="run only worker I of the configured workers (what the fan-out starts)",
        )
        service.set_defaults(handler=handler)
    for name, handler, text in (
        ("ingest", _cmd_ingest, "run the Kafka -> ClickHouse sink and read API (port 4318)"),
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
    simulate.add_argument(
        "scenario", help="normal, llmjacking, agent-loop, budget-burn, drift or mixed"
    )
    simulate.add_argument("--rate", type=float, default=5.0, help="normal requests per second")
    simulate.add_argument("--duration", type=float, default=60.0, help="seconds (0: forever)")
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument("--gateway-url", default=None)
    simulate.add_argument("--labels", metavar="FILE", help="write ground truth (JSON lines)")
    simulate.add_argument(
        "--keys-file",
        metavar="FILE",
        help="reuse the keys saved in FILE and save the ones created there (mode 600)",
    )
    simulate.set_defaults(handler=_cmd_simulate)

    evaluate = verbs.add_parser("eval", help="score the detectors").add_subparsers(
        dest="eval_verb", required=True, metavar="ACTION"
    )
    detections = evaluate.add_parser(
        "detections",
        help="score the detectors (LLMjacking, agent loops, drift) on many drawn cases, in "
        "process (--stack: attack a running stack with the `mixed` scenario instead)",
    )
    detections.add_argument(
        "--draws",
        type=int,
        default=20,
        help="cases per seed and detector: campaigns, runaway sessions, drift shifts",
    )
    detections.add_argument(
        "--seeds",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[1, 2, 3],
        metavar="S1,S2,...",
        help="seeds of the draws (in process)",
    )
    detections.add_argument(
        "--stack", action="store_true", help="run the `mixed` scenario through a stack"
    )
    detections.add_argument("--seed", type=int, default=7)
    detections.add_argument("--duration", type=float, default=90.0, help="seconds of traffic")
    detections.add_argument("--rate", type=float, default=5.0, help="normal requests per second")
    detections.add_argument("--labels", metavar="FILE", help="also keep the ground truth")
    detections.add_argument(
        "--gateway-url",
        default=None,
        help="use this running gateway (and METERLINE_KAFKA_BOOTSTRAP) instead of a fresh stack",
    )
    detections.set_defaults(handler=_cmd_eval_detections)
    _add_admin_verbs(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        settings = load_settings()
    except ConfigError as exc:  # a configuration mistake: one line, no traceback
        print(f"meterline: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        return handler(args, settings)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
