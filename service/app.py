"""The FastAPI application factory. It refuses to start on a database that is not migrated."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker
from starlette.middleware.trustedhost import TrustedHostMiddleware

from service import http_errors
from service.dashboard import mount as mount_dashboard
from service.db import check_schema, make_engine, make_session_factory
from service.deps import AppContext
from service.dispatch import JobDispatcher, LoggingDispatcher
from service.heap import settle_heap
from service.jobs import JobCheck
from service.metrics import HttpMetrics, make_registry
from service.pool.carbon_plan import BudgetFeasibility, CarbonPlanning
from service.request_guards import MULTIPART_OVERHEAD_BYTES, BodyLimit, NulGuard
from service.response_guards import RelativeRedirects, SecurityHeaders
from service.routers import checkpoints, datasets, jobs, openai, ops, stats, teams, webhooks
from service.settings import Settings, get_settings
from service.signin_limit import FailedSignInLimiter
from service.storage import BlobStore, make_store

DESCRIPTION = """Carbon-aware fine-tuning jobs for teams sharing a GPU pool.

Authenticate with `Authorization: Bearer <api key>`. Upload a data set (`POST /datasets`),
submit a job (`POST /jobs`), follow it (`GET /jobs/{id}/events?stream=true`), and read the
energy, CO2 and FLOPs of each epoch (`GET /jobs/{id}/epochs`)."""


def _default_dispatcher(settings: Settings, factory: sessionmaker[Session]) -> JobDispatcher:
    """With a broker and the worker in this build: start jobs right after their commit
    (docs/worker.md); otherwise only log (the scheduler loop picks queued jobs up)."""
    if settings.broker_url and importlib.util.find_spec("worker") is not None:
        from service.pool.api_dispatcher import CeleryJobDispatcher

        return CeleryJobDispatcher(settings, factory)
    return LoggingDispatcher()


def create_app(settings: Settings | None = None, *, dispatcher: JobDispatcher | None = None,
               store: BlobStore | None = None, job_checks: Sequence[JobCheck] = ()) -> FastAPI:
    """Build the app. ``dispatcher`` is told about queued and cancelled jobs after each commit;
    ``job_checks`` run on every submission after the built-in validation (and the check of a
    CO2 budget against the cheapest feasible schedule, `BudgetFeasibility`). Raises
    `SchemaNotMigrated` (naming `greentrainer migrate`) when the database is not migrated."""
    settings = settings or get_settings()
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size,
                         pool_timeout=settings.db_pool_timeout_seconds)
    try:
        check_schema(engine)
    except Exception:
        engine.dispose()
        raise
    factory = make_session_factory(engine)
    planning = CarbonPlanning(settings, factory)  # CO2 budgets are checked at submission

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        planning.close()
        engine.dispose()  # close pooled connections when the server stops

    app = FastAPI(title="GreenTrainer", version="0.1.0", description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.context = AppContext(
        settings=settings, engine=engine, factory=factory,
        store=store or make_store(settings),
        dispatcher=dispatcher or _default_dispatcher(settings, factory),
        job_checks=(*job_checks, BudgetFeasibility(planning)),
        signin_limiter=FailedSignInLimiter(burst=settings.signin_failure_burst,
                                           refill_seconds=settings.signin_failure_refill_seconds),
    )
    app.state.metrics_registry = make_registry(factory)
    http_errors.install(app)
    for module in (ops, teams, datasets, jobs, checkpoints, stats, webhooks, openai):
        app.include_router(module.router)
    mount_dashboard(app, settings)
    # Bodies past the upload limit (plus multipart framing) are refused while they stream in,
    # before anything is spooled to disk; `spool_upload` then enforces the exact file limit.
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES)
    app.add_middleware(NulGuard)
    app.add_middleware(HttpMetrics, registry=app.state.metrics_registry)
    app.add_middleware(RelativeRedirects)
    app.add_middleware(SecurityHeaders)
    if settings.allowed_hosts:  # outermost: another Host is answered 400 before anything runs
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    return app


def create_served_app() -> FastAPI:
    """`create_app` for a server process (uvicorn's factory): the app, then `settle_heap`."""
    app = create_app()
    settle_heap()
    return app
