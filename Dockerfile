# One image for every process of warehouse-api.
#   API (default):  docker run IMAGE                      -> migrations, then uvicorn on :8000
#   worker:         docker run IMAGE warehouse worker
#   admin:          docker run IMAGE warehouse orgs create --name Acme --json
# Configure with environment variables (see the README): DATABASE_URL, REDIS_URL, SECRET_KEY,
# INTERNAL_API_TOKEN, WAREHOUSE_ADMIN_URL, ...  ENVIRONMENT=production refuses placeholder secrets.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
RUN /opt/venv/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ENVIRONMENT=production
# Snapshots and restores run pg_dump/pg_restore of the warehouse cluster's major version
# (app/pgcluster/binaries.py); mount or install other versions and point PG_BIN_DIR at them.
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --create-home --home-dir /var/lib/warehouse-api warehouse
COPY --from=build /opt/venv /opt/venv
# No alembic.ini here: `warehouse migrate` runs the migrations shipped inside the installed package.
WORKDIR /var/lib/warehouse-api
USER warehouse
EXPOSE 8000
CMD ["sh", "-c", "warehouse migrate && exec warehouse serve --host 0.0.0.0 --port 8000"]
