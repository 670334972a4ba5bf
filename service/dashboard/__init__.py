"""The web dashboard: server-rendered pages (Jinja2 + inline SVG charts) served by the API app.

`mount(app, settings)` adds the pages under ``/dashboard`` and the static files under
``/dashboard/static``; every figure comes from `service.stats`, the queries the API uses.
"""

from service.dashboard.router import mount

__all__ = ["mount"]
