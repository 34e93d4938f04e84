# One image for every Meterline service; docker-compose picks the verb.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY meterline meterline
COPY schemas schemas
COPY gateway gateway
COPY ingest ingest
COPY processors processors
COPY dashboards dashboards
RUN pip install . && useradd --create-home meterline
USER meterline
ENTRYPOINT ["meterline"]
