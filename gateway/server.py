"""`serve(settings)`: run the gateway under uvicorn, tuned for the hot path.

`serve(settings, worker=i)` runs worker i of `gateway.workers` (meterline/workers.py): it
binds `gateway_port` with SO_REUSEPORT, as every worker does, so the kernel spreads the
connections, and its own port `gateway_port + 1 + i` for health and per-process checks.
"""

from __future__ import annotations

import logging
import socket

import uvicorn

from gateway.app import create_app
from meterline.settings import Settings
from meterline.workers import gateway_worker_port, worker_settings

__all__ = ["listening_socket", "serve"]


def listening_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A bound TCP socket (uvicorn listens on it); `reuse_port` lets other processes bind
    the same port, the kernel balancing new connections between them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def serve(settings: Settings, worker: int | None = None) -> None:
    """Blocking. SIGTERM/SIGINT stop intake, then the emitter flushes (lifespan shutdown).

    `worker`: run as that worker of `gateway.workers` (shared port + its own port)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sockets = None
    if worker is not None:
        settings = worker_settings(settings, "gateway", worker)
        sockets = [
            listening_socket(settings.host, settings.gateway_port, reuse_port=True),
            listening_socket(
                settings.host, gateway_worker_port(settings, worker), reuse_port=False
            ),
        ]
    app = create_app(settings, freeze_gc=True)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.gateway_port,
        loop="uvloop",
        http="httptools",
        access_log=False,  # requests are logged through the event stream (+115 us otherwise)
        # One trust rule for X-Forwarded-For: settings.gateway.trusted_proxies (client_address.py);
        # uvicorn's own would trust 127.0.0.1 behind our back.
        proxy_headers=False,
        lifespan="on",
        log_level="info",
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run(sockets=sockets)
