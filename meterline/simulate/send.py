"""Send a plan through the gateway: keys via the admin API, requests via the openai SDK.

Each step goes out at its offset from the start, as the client it pretends to be: its
address in `X-Forwarded-For` (honoured when the simulator's hop is a trusted proxy), its
user agent, session and app headers. Ground truth is recorded as requests leave.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx
from openai import NOT_GIVEN, APIStatusError, AsyncOpenAI, OpenAIError

from meterline.clients import AdminClient, ApiError, ClientError
from meterline.settings import Settings
from meterline.simulate.config import SimulationConfig
from meterline.simulate.keyfile import SavedKey, load_keys, save_keys
from meterline.simulate.labels import GroundTruth
from meterline.simulate.plan import Plan, Step
from schemas.subjects import key_subject, session_subject

__all__ = ["CreatedKey", "SendStats", "admin_failure", "create_keys", "reusable", "send_plan"]


@dataclass(frozen=True)
class CreatedKey:
    key_id: str
    secret: str


@dataclass
class SendStats:
    sent: Counter[str] = field(default_factory=Counter)  # per scenario
    statuses: Counter[int] = field(default_factory=Counter)  # 0: no HTTP answer
    behind_s: float = 0.0  # how late the latest step left

    def line(self) -> str:
        scenarios = ", ".join(f"{name} {count}" for name, count in sorted(self.sent.items()))
        statuses = " ".join(f"{code}:{n}" for code, n in sorted(self.statuses.items()))
        late = f", {self.behind_s:.1f}s behind" if self.behind_s > 1 else ""
        return f"{sum(self.sent.values())} sent ({scenarios}); status {statuses or '-'}{late}"


def admin_failure(error: ClientError) -> str:
    """One line for a failed admin call (the simulator and the evaluation stop on it)."""
    if isinstance(error, ApiError) and error.status == 401:
        return f"{error}. Is METERLINE_ADMIN_TOKEN the gateway's admin token?"
    return str(error)


def create_keys(settings: Settings, config: SimulationConfig, plan: Plan) -> dict[str, CreatedKey]:
    """Create the plan's keys and budgets; plan key name -> created key. With a keys file,
    a saved key that is still active with the same attribution is reused, and budgets
    (one id per subject and period) are set again rather than added."""
    created: dict[str, CreatedKey] = {}
    saved = load_keys(config.keys_file) if config.keys_file is not None else {}
    try:
        with AdminClient.from_settings(settings, base_url=config.gateway_url) as admin:
            active = {k["key_id"] for k in admin.list_keys() if not k.get("revoked")}
            for spec in plan.keys:
                attribution = (spec.org, spec.team, spec.project, spec.user)
                known = reusable(saved.get(spec.name), attribution, active)
                if known is None:
                    key = admin.create_key(
                        org=spec.org, team=spec.team, project=spec.project, user=spec.user
                    )
                    known = SavedKey(key["key_id"], key["key"], attribution)
                    saved[spec.name] = known
                created[spec.name] = CreatedKey(known.key_id, known.secret)
            for budget in plan.budgets:
                admin.set_budget(
                    key_subject(created[budget.key].key_id),
                    period=budget.period,
                    limit_usd=budget.limit_usd,
                    action_on_hard=budget.action_on_hard,
                )
    except ClientError as exc:
        raise RuntimeError(admin_failure(exc)) from exc
    finally:
        if config.keys_file is not None and saved:
            save_keys(config.keys_file, saved)
    return created


def reusable(
    saved: SavedKey | None, attribution: tuple[str, str, str, str], active: set[str]
) -> SavedKey | None:
    """The saved key if it can stand for the plan's key: still active, same attribution."""
    if saved is None or saved.key_id not in active or saved.attribution != attribution:
        return None
    return saved


class _Sender:
    def __init__(
        self,
        config: SimulationConfig,
        keys: dict[str, CreatedKey],
        truth: GroundTruth,
        run_tag: str,
    ) -> None:
        self.config = config
        self.keys = keys
        self.truth = truth
        self.run_tag = run_tag
        self.stats = SendStats()
        # One connection pool for every simulated client.
        self.http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=config.max_in_flight), timeout=60.0
        )
        self.clients = {
            name: AsyncOpenAI(
                base_url=f"{config.gateway_url.rstrip('/')}/v1",
                api_key=key.secret,
                max_retries=0,
                http_client=self.http,
            )
            for name, key in keys.items()
        }

    def _session(self, step: Step) -> str | None:
        # Unique per run, so two runs against one stack never share a session.
        return f"{self.run_tag}-{step.session_id}" if step.session_id else None

    def _record(self, step: Step, session: str | None) -> None:
        now = time.time()
        subjects = [(key_subject(self.keys[step.key].key_id), step.key)]
        if session:
            subjects.append((session_subject(session), step.session_id or ""))
        if step.app:
            subjects.append((f"app:{step.app}", step.app))
        for subject, name in subjects:
            self.truth.record(
                subject,
                name,
                scenario=step.scenario,
                stage=step.stage,
                malicious=step.malicious,
                detector=step.detector,
                ts=now,
            )

    async def send(self, step: Step) -> None:
        session = self._session(step)
        headers = {
            name: value
            for name, value in (
                ("X-Forwarded-For", step.client_ip),
                ("User-Agent", step.user_agent),
                ("x-session-id", session),
                ("x-meterline-app", step.app),
            )
            if value
        }
        client = self.clients[step.key]
        self._record(step, session)
        self.stats.sent[step.scenario] += 1
        try:
            if step.action == "models":
                await client.models.list(extra_headers=headers)
            else:
                await self._chat(client, step, headers)
            self.stats.statuses[200] += 1
        except APIStatusError as exc:
            self.stats.statuses[exc.status_code] += 1
        except OpenAIError:
            self.stats.statuses[0] += 1

    @staticmethod
    async def _chat(client: AsyncOpenAI, step: Step, headers: dict[str, str]) -> None:
        extra_body = {"mock_tool_arguments": step.tool_arguments} if step.tool_arguments else None
        response = await client.chat.completions.create(
            model=step.model,
            messages=list(step.messages),  # type: ignore[arg-type]
            max_tokens=step.max_tokens if step.max_tokens is not None else NOT_GIVEN,
            stream=step.stream,
            tools=list(step.tools) if step.tools else NOT_GIVEN,  # type: ignore[arg-type]
            extra_headers=headers,
            extra_body=extra_body,
        )
        if step.stream:
            async for _ in response:  # type: ignore[union-attr]
                pass

    async def aclose(self) -> None:
        await self.http.aclose()


async def send_plan(
    plan: Plan,
    config: SimulationConfig,
    keys: dict[str, CreatedKey],
    truth: GroundTruth,
    *,
    run_tag: str | None = None,
) -> SendStats:
    """Send every step due before `config.duration_s` (all of them when it is 0)."""
    sender = _Sender(config, keys, truth, run_tag or uuid.uuid4().hex[:6])
    slots = asyncio.Semaphore(config.max_in_flight)
    pending: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def report() -> None:
        while True:
            await asyncio.sleep(config.progress_every_s)
            elapsed = loop.time() - started
            print(f"simulate: {elapsed:5.0f}s  {sender.stats.line()}", flush=True)

    # A session's steps go one after the other, as an agent or a chat waits for its answer
    # before the next turn; on a busy machine sending them on the clock alone would let
    # them overtake each other.
    sessions: dict[str, asyncio.Task[None]] = {}

    async def one(step: Step, before: asyncio.Task[None] | None) -> None:
        try:
            if before is not None:
                await asyncio.wait({before})
            await sender.send(step)
        finally:
            slots.release()

    def forget(session: str, task: asyncio.Task[None]) -> None:
        if sessions.get(session) is task:
            del sessions[session]

    reporter = asyncio.create_task(report())
    try:
        for step in plan.steps:
            if 0 < config.duration_s <= step.at_s:
                break
            delay = started + step.at_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            sender.stats.behind_s = max(loop.time() - started - step.at_s, 0.0)
            before = sessions.get(step.session_id) if step.session_id else None
            task = asyncio.create_task(one(step, before))
            pending.add(task)
            task.add_done_callback(pending.discard)
            if step.session_id:
                sessions[step.session_id] = task
                task.add_done_callback(lambda done, sid=step.session_id: forget(sid, done))
        if pending:
            await asyncio.wait(pending, timeout=60)
    finally:
        reporter.cancel()
        for task in pending:
            task.cancel()
        await sender.aclose()
    return sender.stats
