"""The gateway's own OpenTelemetry span per proxied request, shipped as a SpanEvent."""

from gateway.tracing.processor import EmitterSpanProcessor
from gateway.tracing.tracer import SERVICE_NAME, GatewayTracer

__all__ = ["SERVICE_NAME", "EmitterSpanProcessor", "GatewayTracer"]
