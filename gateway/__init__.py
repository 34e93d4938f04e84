"""Meterline gateway: OpenAI-compatible proxy that meters every request to Kafka.

Entry points: `gateway.app.create_app(settings)` and `gateway.server.serve(settings)`.
"""

__all__: list[str] = []
