"""/healthz (process alive), /readyz (database and broker reachable), /metrics (Prometheus)."""

from __future__ import annotations

import asyncio

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
    database, broker = await asyncio.gather(
        asyncio.to_thread(check_database, context.engine),
        asyncio.to_thread(check_broker, context.settings.broker_url),
    )
    checks = {
        "database": database or "ok",
        "broker": broker or ("ok" if context.settings.broker_url else "embedded (no broker)"),
    }
    ready = database is None and broker is None
    return JSONResponse({"status": "ready" if ready else "unavailable", "checks": checks},
                        status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics_registry),
                    media_type=CONTENT_TYPE_LATEST)
