"""/v1: OpenAI-compatible routes, so that the OpenAI SDK (``base_url=<server>/v1``, the team's
API key) uploads files and runs fine-tuning jobs here. Thin adapters: each route translates
OpenAI's shapes and calls the same domain functions as the native /datasets and /jobs routes
(`service.datasets`, `service.jobs`, `service.pausing`, `service.job_events`); errors are
answered in OpenAI's shape by `service.http_errors`. See docs/openai.md."""

from __future__ import annotations

from fastapi import APIRouter

from service.routers.openai import files, fine_tuning

router = APIRouter(prefix="/v1")
router.include_router(files.router)
router.include_router(fine_tuning.router)
