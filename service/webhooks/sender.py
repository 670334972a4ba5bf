"""Sending webhook deliveries, signed per the Standard Webhooks spec (``webhook-id``,
``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>``, made
by the `standardwebhooks` package), from the scheduler process: never in a request.

A try that gets a 2xx answer ends the delivery (``succeeded``). Anything else (another status,
a timeout, a refused connection, a target that now resolves to a private address) is logged in
the delivery's ``attempt_log`` and retried after ``backoff_seconds``, doubling each time up to
``max_backoff_seconds``, until ``max_attempts`` tries (then ``failed``). Each due delivery is
claimed by pushing its next try past the answer's timeout before the request is sent, so two
scheduler processes never send one try twice, and a process that dies mid-try leaves it due
again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook

from service.db import session_scope
from service.errors import InvalidInput
from service.models import utcnow
from service.settings import WebhookSettings
from service.webhooks.models import WebhookDelivery, WebhookEndpoint
from service.webhooks.targets import check_target

log = logging.getLogger("service.webhooks")

BATCH = 20  # deliveries claimed per pass
ERROR_CHARS = 500  # of a receiver's answer kept in the log


def backoff_s(settings: WebhookSettings, attempts: int) -> float:
    """The wait after the ``attempts``-th failed try: backoff, doubled per try, capped."""
    return float(min(settings.backoff_seconds * 2 ** (attempts - 1), settings.max_backoff_seconds))


def signed_request(endpoint: WebhookEndpoint, delivery: WebhookDelivery,
                   now: datetime) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one try (the timestamp is the try's, as the spec has it)."""
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True)
    signature = Webhook(endpoint.secret).sign(delivery.id, now, body)
    return body.encode(), {"content-type": "application/json", "webhook-id": delivery.id,
                           "webhook-timestamp": str(int(now.timestamp())),
                           "webhook-signature": signature,
                           "user-agent": "GreenTrainer-Webhooks/1"}


def _claim(factory: sessionmaker[Session], settings: WebhookSettings,
           now: datetime) -> list[str]:
    lease = timedelta(seconds=settings.timeout_seconds * 2 + 5)
    with session_scope(factory) as session:
        query = (select(WebhookDelivery).where(WebhookDelivery.status == "pending",
                                               WebhookDelivery.next_attempt_at <= now)
                 .order_by(WebhookDelivery.next_attempt_at).limit(BATCH)
                 .with_for_update(skip_locked=True))
        due = list(session.scalars(query))
        for delivery in due:
            delivery.next_attempt_at = now + lease
        return [d.id for d in due]


def _try(client: httpx.Client, settings: WebhookSettings, endpoint: WebhookEndpoint,
         delivery: WebhookDelivery, now: datetime) -> tuple[int | None, str | None]:
    """(status code, error) of one try; an error is None only for a 2xx answer."""
    try:
        check_target(endpoint.url, allow_private=settings.allow_private_targets)
    except InvalidInput as exc:
        return None, exc.message
    body, headers = signed_request(endpoint, delivery, now)
    try:
        response = client.post(endpoint.url, content=body, headers=headers,
                               timeout=settings.timeout_seconds)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}: {response.text[:ERROR_CHARS]}"


def _send(factory: sessionmaker[Session], client: httpx.Client, settings: WebhookSettings,
          delivery_id: str) -> str:
    with session_scope(factory) as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id) if delivery else None
        if delivery is None or endpoint is None or delivery.status != "pending":
            return "gone"
        session.expunge(delivery)
        session.expunge(endpoint)
    started, now = time.monotonic(), utcnow()
    code, error = _try(client, settings, endpoint, delivery, now)
    with session_scope(factory) as session:
        row = session.get(WebhookDelivery, delivery_id)
        if row is None:
            return "gone"
        row.attempts += 1
        row.last_status_code, row.last_error = code, error
        row.attempt_log = [*row.attempt_log, {
            "at": now.isoformat().replace("+00:00", "Z"), "status_code": code, "error": error,
            "duration_ms": round(1000 * (time.monotonic() - started), 1)}]
        if error is None:
            row.status, row.finished_at, row.next_attempt_at = "succeeded", utcnow(), None
        elif row.attempts >= settings.max_attempts:
            row.status, row.finished_at, row.next_attempt_at = "failed", utcnow(), None
        else:
            row.next_attempt_at = utcnow() + timedelta(seconds=backoff_s(settings, row.attempts))
        log.log(logging.INFO if error is None else logging.WARNING,
                "webhook %s (%s) to %s: try %d %s", row.id, row.event_type, endpoint.url,
                row.attempts, "delivered" if error is None else f"failed: {error}")
        return row.status


def deliver_due(factory: sessionmaker[Session], settings: WebhookSettings,
                client: httpx.Client | None = None) -> dict[str, str]:
    """Send every delivery due now; returns delivery id -> its status after this try."""
    own = client is None
    client = client or httpx.Client(follow_redirects=False)
    try:
        return {delivery_id: _send(factory, client, settings, delivery_id)
                for delivery_id in _claim(factory, settings, utcnow())}
    finally:
        if own:
            client.close()


class WebhookSender:
    """A thread of the scheduler process that sends due deliveries every ``interval_seconds``."""

    def __init__(self, factory: sessionmaker[Session], settings: WebhookSettings,
                 stop: threading.Event) -> None:
        self.factory, self.settings, self.stop = factory, settings, stop
        self.thread = threading.Thread(target=self._loop, name="webhook-sender", daemon=True)

    def _loop(self) -> None:
        with httpx.Client(follow_redirects=False) as client:
            while not self.stop.is_set():
                try:
                    deliver_due(self.factory, self.settings, client)
                except Exception:  # a database restart must not end the sender
                    log.exception("webhook pass failed; retrying")
                self.stop.wait(self.settings.interval_seconds)

    def start(self) -> WebhookSender:
        self.thread.start()
        return self

    def join(self, timeout: float | None = None) -> Any:
        return self.thread.join(timeout)
