"""The dashboard's pages under /dashboard: sign-in, overview, jobs (live list and submit form),
job detail (charts, cancel, pause, resume, artifacts). Pages read the same domain functions and `service.stats`
queries as the API; access to a job goes through `service.auth.owned` like every API route."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from greentrainer_core.methods import METHOD_NAMES
from service.artifact_download import artifact_response
from service.auth import Principal, owned
from service.dashboard import charts
from service.dashboard.carbon_view import carbon_rows
from service.dashboard.format import FILTERS, evaluation_metrics
from service.dashboard.forms import RHO_TYPES, FormErrors, submit_form
from service.dashboard.secret import session_secret
from service.dashboard.sessions import (
    CSRF_FIELD,
    CSRF_HEADER,
    SessionCodec,
    WebSession,
    check_csrf,
    end_session,
    principal_of,
    sign_in,
)
from service.datasets import list_datasets
from service.deps import AppContext, client_address
from service.errors import NotAuthenticated, NotFound, TooManyFailedSignIns
from service.grid import app_outlook
from service.job_actions import ACTIONS, Action, act
from service.job_events import list_events
from service.jobs import list_jobs
from service.models import Artifact, Job, Team
from service.routers.jobs import job_out, job_pause
from service.settings import DashboardSettings, Settings
from service.states import TERMINAL, JobStatus
from service.stats import estimate_notes, job_series, overview

HERE = Path(__file__).resolve().parent
PREFIX = "/dashboard"
EVENTS_SHOWN = 200  # the job page lists this many events (the API pages through all)
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(FILTERS)
router = APIRouter(prefix=PREFIX, include_in_schema=False)
_T = TypeVar("_T")


class SignInRequired(Exception):
    """A page was asked for without a valid session: answered by a redirect to the sign-in."""


def _context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


def _codec(request: Request) -> SessionCodec:
    codec: SessionCodec = request.app.state.dashboard_codec
    return codec


def _admin_key(context: AppContext) -> str | None:
    key = context.settings.admin_key
    return key.get_secret_value() if key else None


def _who(request: Request, session: Session) -> tuple[WebSession, Principal | None]:
    web = _codec(request).read(request)
    return web, principal_of(session, _codec(request), web,
                             admin_key=_admin_key(_context(request)))


def _signed_in(request: Request, session: Session, *,
               page: bool = True) -> tuple[WebSession, Principal]:
    """The signed-in caller: the one sign-in check of every dashboard route. Without a valid
    session a page redirects to the sign-in (``page``), and what a page fetches is answered 401."""
    web, principal = _who(request, session)
    if principal is None:
        if page:
            raise SignInRequired()
        raise NotAuthenticated("sign in with your team's API key", field="session")
    return web, principal


def _own_job(request: Request, session: Session, job_id: str, *,
             page: bool = True) -> tuple[WebSession, Principal, Job]:
    """The signed-in caller and their job ``job_id`` (`owned`: another team's is NotFound)."""
    web, principal = _signed_in(request, session, page=page)
    return web, principal, owned(session, Job, job_id, principal)


async def _in_db(request: Request, page: Callable[..., _T], *args: Any) -> _T:
    """``page(request, *args)`` in the request thread pool, holding one of the API process's
    database connection permits (taken here, on the event loop, as `SessionDep` does: see
    `ConnectionPermits`). Every page that reads the database goes through here and opens one
    session, so the dashboard can neither take connections that API requests hold permits
    for, nor hold two at once."""
    return await _context(request).db_permits.run(page, request, *args)


def _render(request: Request, web: WebSession, name: str, status_code: int = 200, *,
            session: Session | None = None, **values: Any) -> HTMLResponse:
    """The page; with a team's ``principal``, the team's name is read in the caller's
    ``session`` (required then)."""
    settings: DashboardSettings = request.app.state.dashboard_settings
    principal = values.get("principal")
    if isinstance(principal, Principal) and principal.team_id and "team_name" not in values:
        if session is None:
            raise TypeError("_render: a team's page needs the request's session")
        values["team_name"] = session.scalar(select(Team.name).where(
            Team.id == principal.team_id))
    response = templates.TemplateResponse(request, name, {
        "csrf_field": CSRF_FIELD, "csrf_token": web.csrf, "prefix": PREFIX,
        "poll_ms": int(settings.poll_seconds * 1000), **values}, status_code=status_code)
    _codec(request).write(response, web)
    return response


async def _form(request: Request, web: WebSession) -> Any:
    form = await request.form()
    token = form.get(CSRF_FIELD)
    check_csrf(web, token if isinstance(token, str) else request.headers.get(CSRF_HEADER))
    return form


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    return await _in_db(request, _login_page)


def _login_page(request: Request) -> HTMLResponse:
    with _context(request).factory() as session:
        web, _ = _who(request, session)
    return _render(request, web, "login.html")


@router.post("/login")
async def login(request: Request) -> Response:
    web = _codec(request).read(request)
    form = await _form(request, web)
    key = form.get("api_key")
    return await _in_db(request, _login, web, key if isinstance(key, str) else "")


def _end(request: Request, web: WebSession) -> None:
    context = _context(request)
    with context.factory() as session:
        end_session(session, web, context.settings.dashboard.session_max_age_s)


def _login(request: Request, web: WebSession, key: str) -> Response:
    context = _context(request)
    limiter, address = context.signin_limiter, client_address(request)
    with context.factory() as session:
        try:
            new_web, _ = sign_in(session, _codec(request), key, admin_key=_admin_key(context),
                                 limiter=limiter, address=address)
        except TooManyFailedSignIns as exc:
            refused = _render(request, web, "login.html", 429, error=exc.message)
            refused.headers["Retry-After"] = str(exc.retry_after_s)
            return refused
        except NotAuthenticated as exc:
            return _render(request, web, "login.html", 401, error=exc.message)
    response = _redirect(PREFIX)
    _codec(request).write(response, new_web)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    web = _codec(request).read(request)
    await _form(request, web)
    await _in_db(request, _end, web)  # a copy of the cookie is refused from now on
    response = _redirect(f"{PREFIX}/login")
    _codec(request).write(response, WebSession())  # a fresh, signed-out session
    return response


@router.get("", response_class=HTMLResponse)
async def overview_page(request: Request) -> HTMLResponse:
    return await _in_db(request, _overview_page)


def _overview_page(request: Request) -> HTMLResponse:
    with _context(request).factory() as session:
        web, principal = _signed_in(request, session)
        figures = overview(session, None if principal.is_admin else principal.team_id)
        return _render(request, web, "overview.html", session=session, principal=principal,
                       figures=figures, charts=charts.overview_charts(figures))


@router.get("/grid", response_class=HTMLResponse)
async def grid_fragment(request: Request) -> HTMLResponse:
    """The overview's "grid now" section, fetched after the page so that a slow carbon API
    never delays the page's own figures (nor holds a database connection while it answers)."""
    web, _ = await _in_db(request, _caller_alone)
    carbon = await run_in_threadpool(app_outlook, request.app.state,
                                    _context(request).settings.carbon)
    return await run_in_threadpool(_render, request, web, "_grid.html", carbon=carbon,
                                   carbon_chart=charts.forecast_chart(carbon))


def _caller_alone(request: Request) -> tuple[WebSession, Principal]:
    with _context(request).factory() as session:
        return _signed_in(request, session, page=False)


def _jobs_page(request: Request, web: WebSession, principal: Principal, session: Session,
               status_code: int = 200, errors: FormErrors | None = None,
               form: Any = None) -> HTMLResponse:
    scope = None if principal.is_admin else principal.team_id
    rows, _ = list_jobs(session, scope, after=None, limit=50)
    datasets = [] if scope is None else list_datasets(session, scope, after=None, limit=50)[0]
    return _render(request, web, "jobs.html", status_code, session=session,
                   principal=principal, jobs=rows,
                   datasets=datasets, errors=errors or FormErrors(), form=form or {},
                   methods=METHOD_NAMES, rho_types=RHO_TYPES, terminal=[s.value for s in TERMINAL],
                   idempotency_key=secrets.token_urlsafe(16))


@router.get("/jobs", response_class=HTMLResponse)
async def jobs_page(request: Request) -> HTMLResponse:
    return await _in_db(request, _jobs_page_alone)


def _jobs_page_alone(request: Request) -> HTMLResponse:
    with _context(request).factory() as session:
        web, principal = _signed_in(request, session)
        return _jobs_page(request, web, principal, session)


@router.post("/jobs")
async def submit(request: Request) -> Response:
    # The upload is read (and the CSRF token checked) before any database connection is taken;
    # the database work runs in the thread pool, like the API's own routes.
    form = await _form(request, _codec(request).read(request))
    return await _in_db(request, _submit, form)


def _submit(request: Request, form: Any) -> Response:
    context = _context(request)
    with context.factory() as session:
        web, principal = _signed_in(request, session)
        job, errors, dataset_id = submit_form(session, context, principal.require_team(), form)
        if job is None:
            values = {k: v for k, v in form.items() if isinstance(v, str)}
            values["training_dataset"] = dataset_id or values.get("training_dataset", "")
            return _jobs_page(request, web, principal, session, 422, errors, values)
    return _redirect(f"{PREFIX}/jobs/{job.id}")


@router.get("/api/jobs")
async def jobs_json(request: Request) -> JSONResponse:
    """The live list's data: the same rows and fields as `GET /jobs` for the session's caller."""
    return await _in_db(request, _jobs_json)


def _jobs_json(request: Request) -> JSONResponse:
    with _context(request).factory() as session:
        _, principal = _signed_in(request, session, page=False)
        rows, _ = list_jobs(session, None if principal.is_admin else principal.team_id,
                            after=None, limit=50)
        return JSONResponse({"data": [job_out(j).model_dump(mode="json") for j in rows]})


@router.get("/api/jobs/{job_id}")
async def job_json(request: Request, job_id: str) -> JSONResponse:
    """One job as `GET /jobs/{id}` returns it; the job page re-draws when ``updated_at`` moves."""
    return await _in_db(request, _job_json, job_id)


def _job_json(request: Request, job_id: str) -> JSONResponse:
    with _context(request).factory() as session:
        *_, job = _own_job(request, session, job_id, page=False)
        return JSONResponse(job_out(job).model_dump(mode="json"))


def _job_view(request: Request, session: Session, principal: Principal,
              job_id: str) -> dict[str, Any]:
    job = owned(session, Job, job_id, principal)
    series = job_series(session, job)
    artifacts = list(session.scalars(select(Artifact).where(Artifact.job_id == job.id)
                                     .order_by(Artifact.created_at, Artifact.id)))
    return {"job": job, "series": series, "artifacts": artifacts, "principal": principal,
            "job_json_updated_at": job_out(job).model_dump(mode="json")["updated_at"],
            "metrics": evaluation_metrics(job.result),
            "events": list_events(session, job.id, after=None, limit=EVENTS_SHOWN),
            "carbon_rows": carbon_rows(session, job.id), "estimates": estimate_notes(series),
            "terminal": JobStatus(job.status) in TERMINAL, "pause": job_pause(job),
            "carbon_chart": charts.carbon_chart(job, series) if series.epochs else None,
            "flops_chart": charts.flops_chart(series) if series.epochs else None,
            "energy_chart": charts.energy_chart(series) if series.epochs else None,
            "loss_chart": charts.loss_chart(series), "tensor_map": charts.tensor_heatmap(series)}


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(request: Request, job_id: str) -> HTMLResponse:
    return await _in_db(request, _job_page, job_id)


def _job_page(request: Request, job_id: str) -> HTMLResponse:
    with _context(request).factory() as session:
        web, principal = _signed_in(request, session)
        try:
            view = _job_view(request, session, principal, job_id)
        except NotFound as exc:
            return _render(request, web, "not_found.html", 404, session=session,
                           message=exc.message, principal=principal)
        return _render(request, web, "job.html", session=session, **view)


@router.get("/jobs/{job_id}/fragment", response_class=HTMLResponse)
async def job_fragment(request: Request, job_id: str) -> HTMLResponse:
    """The job page's body, re-fetched by the page while the job runs."""
    return await _in_db(request, _job_fragment, job_id)


def _job_fragment(request: Request, job_id: str) -> HTMLResponse:
    with _context(request).factory() as session:
        web, principal = _signed_in(request, session, page=False)
        return _render(request, web, "_job_body.html", session=session,
                       **_job_view(request, session, principal, job_id))


@router.post("/jobs/{job_id}/{action}")
async def job_action(request: Request, job_id: str, action: str) -> Response:
    """The job page's buttons: cancel, pause, resume (CSRF-checked forms)."""
    if action not in ACTIONS:
        raise NotFound(f"no job action {action!r}", field="action")
    await _form(request, _codec(request).read(request))
    return await _in_db(request, _job_action, job_id, action)


def _job_action(request: Request, job_id: str, action: Action) -> Response:
    context = _context(request)
    with context.factory() as session:
        *_, job = _own_job(request, session, job_id)
        act(session, context.dispatcher, job, action)
    return _redirect(f"{PREFIX}/jobs/{job_id}")


@router.get("/jobs/{job_id}/artifacts/{artifact_id}")
async def download(request: Request, job_id: str, artifact_id: str) -> Response:
    # The permit is held while the artifact is looked up, not while its bytes are sent.
    return await _in_db(request, _download, job_id, artifact_id)


def _download(request: Request, job_id: str, artifact_id: str) -> Response:
    context = _context(request)
    with context.factory() as session:
        *_, job = _own_job(request, session, job_id)
        artifact = session.get(Artifact, artifact_id)
        if artifact is None or artifact.job_id != job.id:
            raise NotFound(f"no artifact with id {artifact_id!r}", field="artifact_id")
    return artifact_response(context.store, context.settings.storage, artifact)


async def _sign_in_redirect(request: Request, _exc: Exception) -> Response:
    return _redirect(f"{PREFIX}/login")


def mount(app: FastAPI, service_settings: Settings) -> None:
    """Add the dashboard to ``app``: pages, static files, the session codec."""
    settings = service_settings.dashboard
    app.state.dashboard_settings = settings
    app.state.dashboard_codec = SessionCodec(session_secret(settings, Path(service_settings.data_dir)),
                                             max_age_s=settings.session_max_age_s,
                                             secure=settings.cookie_secure)
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="dashboard-static")
    app.add_exception_handler(SignInRequired, _sign_in_redirect)
    app.add_api_route("/", lambda: _redirect(PREFIX), include_in_schema=False)
