"""GatewayTracer: the TracerProvider the gateway runtime owns, and the span of one request.

The span is recorded when the request finishes, with the request's own start and end
times: its attributes (usage, model, status) are only known then, and one start_span/end
per request needs no context carried across awaits. Its parent is the caller's W3C
`traceparent` (OTel's propagator); the RequestEvent takes the span's trace id, so requests
and spans join on trace_id.

Every request gets its span whatever the caller's sampled flag (ALWAYS_ON): the span is
the gateway's own record of the request, not a sample of the caller's trace.
"""

from __future__ import annotations

import logging
import time

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.record import RequestRecord
from gateway.tracing.attributes import operation_of, request_attributes
from gateway.tracing.processor import Emit, EmitterSpanProcessor

__all__ = ["SERVICE_NAME", "GatewayTracer"]

log = logging.getLogger(__name__)

# processors/spans never costs spans of this service: the RequestEvent already is.
SERVICE_NAME = "meterline-gateway"
_PROPAGATOR = TraceContextTextMapPropagator()


class GatewayTracer:
    """**Parameters:** `emit` (KafkaEmitter.emit), `topic` (the full spans topic)."""

    def __init__(self, emit: Emit, topic: str) -> None:
        # Resource() rather than Resource.create(): OTEL_SERVICE_NAME must not rename the
        # gateway, or its spans would be costed twice.
        self.provider = TracerProvider(
            sampler=ALWAYS_ON,
            resource=Resource({"service.name": SERVICE_NAME}),
            shutdown_on_exit=False,  # the runtime shuts it down
        )
        self.provider.add_span_processor(EmitterSpanProcessor(emit, topic))
        self._tracer = self.provider.get_tracer("meterline.gateway")

    def record(self, record: RequestRecord) -> None:
        """Record the span of a finished request and set `record.trace_id` to its trace.

        Never raises: a span that cannot be built must not cost the RequestEvent.
        """
        try:
            parent = (
                _PROPAGATOR.extract({"traceparent": record.traceparent})
                if record.traceparent
                else Context()  # explicit: never an ambient span of the server's task
            )
            # Whole microseconds, rounded as datetime rounds the RequestEvent's ts_start.
            start_ns = round(record.started_wall * 1e6) * 1000
            end_ns = start_ns + int((time.perf_counter() - record.started) * 1e9)
            operation = operation_of(record.endpoint)
            model = record.model_requested
            span = self._tracer.start_span(
                f"{operation} {model}" if model else operation,
                context=parent,
                kind=SpanKind.SERVER,
                attributes=request_attributes(record),
                start_time=start_ns,
            )
            if record.status_code >= 400 or record.error_type:
                span.set_status(Status(StatusCode.ERROR, record.error_type))
            context = span.get_span_context()
            if context.is_valid:  # invalid only when OTEL_SDK_DISABLED=true
                record.trace_id = format(context.trace_id, "032x")
            span.end(end_time=end_ns)
        except Exception:
            log.exception("gateway span for request %s could not be recorded", record.request_id)

    def close(self) -> None:
        """Flush and end the span pipeline (`close`, as every thread-owning component:
        meterline.lifecycle)."""
        self.provider.shutdown()
