"""/healthz (process alive), /readyz (database and broker reachable), /metrics (Prometheus)."""

from __future__ import annotations

import asyncio

import sqlalchemy.exc
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import Context
from service.readiness import check_broker, check_database

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(context: Context) -> JSONResponse:
    async def database_check() -> str | None:  # a connection, so under a permit like any request
        try:
            return await context.db_permits.run(check_database, context.engine)
        except sqlalchemy.exc.TimeoutError as exc:  # every permit held for the pool timeout
            return str(exc)

    database, broker = await asyncio.gather(
        database_check(), asyncio.to_thread(check_broker, context.settings.broker_url))
    checks = {
        "database": database or "ok",
        "broker": broker or ("ok" if context.settings.broker_url else "embedded (no broker)"),
    }
    ready = database is None and broker is None
    return JSONResponse({"status": "ready" if ready else "unavailable", "checks": checks},
                        status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, context: Context) -> Response:
    # the job gauges are read from the database
    body = await context.db_permits.run(generate_latest, request.app.state.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
