"""Webhooks per team: endpoints registered through the API (`endpoints.py`), job events queued
as deliveries in the transaction of the change they report (`events.py`), sent, signed per the
Standard Webhooks spec and retried with backoff by the scheduler process (`sender.py`)."""

from service.webhooks.events import EVENT_TYPES, notify_job_event

__all__ = ["EVENT_TYPES", "notify_job_event"]
