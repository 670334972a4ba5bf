"""FastAPI dependencies: the app's context, a DB session per request, the caller, and the one
reusable access rule (`OwnedJob`: the job if the caller may see it, else 404)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated

import anyio
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.auth import Principal, authenticate, owned
from service.db import ConnectionPermits, pool_capacity
from service.dispatch import JobDispatcher
from service.errors import NotAuthenticated
from service.jobs import JobCheck
from service.models import Job
from service.settings import Settings
from service.signin_limit import FailedSignInLimiter
from service.storage import BlobStore


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    store: BlobStore
    dispatcher: JobDispatcher
    job_checks: Sequence[JobCheck] = ()
    signin_limiter: FailedSignInLimiter | None = None
    db_permits: ConnectionPermits = field(init=False)

    def __post_init__(self) -> None:
        self.db_permits = ConnectionPermits(pool_capacity(self.settings.db_pool_size),
                                            self.settings.db_pool_timeout_seconds)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# Dependencies that do no I/O are `async def`: FastAPI runs every plain `def` dependency as a
# trip to the request thread pool, which costs more than the work itself.
async def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


Context = Annotated[AppContext, Depends(get_context)]


async def get_session(context: Context) -> AsyncIterator[Session]:
    """One session per request, opened only with a connection permit (`ConnectionPermits`
    says why). A session still in a transaction is closed in a thread of its own (returning
    its connection rolls back, a round trip) so that it never waits for the request thread
    pool; one that holds none (committed, or never used) is closed here: no I/O, no thread.

    Used with ``scope="function"`` (`SessionDep`): the session and its permit end when the
    endpoint has returned and its reply is serialized, before the body is sent. With the
    default scope they lasted until the body was sent, so an open event stream (hours) or a
    large download held a permit throughout, and as many open streams as permits left every
    other request of the process waiting for the pool timeout."""
    async with context.db_permits.hold():
        session = context.factory()
        try:
            yield session
        finally:
            if session.in_transaction():
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(session.close,
                                                   limiter=anyio.CapacityLimiter(1))
            else:
                session.close()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="A team or admin API key.")


def current_principal(request: Request, context: Context, session: SessionDep,
                      credentials: Annotated[HTTPAuthorizationCredentials | None,
                                             Depends(_bearer)]) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated("missing API key: send `Authorization: Bearer <api key>`",
                               field="Authorization")
    admin_key = context.settings.admin_key
    limiter, address = context.signin_limiter, client_address(request)
    # with a limiter, failures are recorded (and 429 answered) by `authenticate`
    return authenticate(session, credentials.credentials,
                        admin_key=admin_key.get_secret_value() if admin_key else None,
                        limiter=limiter, address=address)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def team_id_of(principal: CurrentPrincipal) -> str:
    return principal.require_team()


TeamId = Annotated[str, Depends(team_id_of)]


async def admin_only(principal: CurrentPrincipal) -> Principal:
    principal.require_admin()
    return principal


Admin = Annotated[Principal, Depends(admin_only)]


def owned_job(job_id: str, session: SessionDep, principal: CurrentPrincipal) -> Job:
    return owned(session, Job, job_id, principal)


OwnedJob = Annotated[Job, Depends(owned_job)]
