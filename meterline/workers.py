"""Several processes per service (issue 13): which ports and directories worker i uses.

`processors.workers`, `gateway.workers` and `ingest.sink.workers` (METERLINE_PROCESSORS_WORKERS,
METERLINE_GATEWAY_WORKERS, METERLINE_SINK_WORKERS) say how many run. `meterline up` and the
standalone `meterline gateway` / `meterline processors` start that many children
(`meterline <service> --worker I`) and supervise them; the sink runs its consumers as
threads of the one ingest process (embedded chDB allows one engine per process).

- Processors worker i: same Faust app id (one consumer group), web port
  `processors_port + i`, state under its own data dir (`<data_dir>/processors-<i>` for
  i >= 1; worker 0 keeps `<data_dir>`, so a single worker's state stays where it was).
- Gateway worker i: listens on `gateway_port` with SO_REUSEPORT (the kernel spreads the
  connections over the workers) and also on its own port `gateway_port + 1 + i`, the
  same app: the supervisor probes that port's /healthz to know this very process is
  ready, and tests reach one process's in-memory views through it. Its spool is
  `<spool>-<i>` for i >= 1 (one writer per spool directory).

Worker 0's paths are a single process's paths, so going from 1 to N workers and back
keeps worker 0's state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from meterline.settings import Settings

__all__ = [
    "Service",
    "gateway_worker_port",
    "worker_count",
    "worker_settings",
]

Service = Literal["gateway", "processors"]


def worker_count(settings: Settings, service: Service) -> int:
    return settings.gateway.workers if service == "gateway" else settings.processors.workers


def gateway_worker_port(settings: Settings, index: int) -> int:
    """Worker `index`'s own port (health, per-process checks), beside the shared one."""
    return settings.gateway_port + 1 + index


def _numbered(path: Path, index: int) -> Path:
    return path if index == 0 else path.with_name(f"{path.name}-{index}")


def worker_settings(settings: Settings, service: Service, index: int) -> Settings:
    """The settings worker `index` of `service` runs with (see the module docstring)."""
    count = worker_count(settings, service)
    if not 0 <= index < count:
        raise ValueError(f"{service} worker {index} out of range: {service} workers = {count}")
    if service == "processors":
        data_dir = settings.data_dir if index == 0 else settings.data_dir / f"processors-{index}"
        return settings.model_copy(
            update={"processors_port": settings.processors_port + index, "data_dir": data_dir}
        )
    gateway = settings.gateway.model_copy(
        update={"spool_dir": _numbered(settings.resolved_spool_dir, index)}
    )
    return settings.model_copy(update={"gateway": gateway})
