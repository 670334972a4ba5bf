"""Text that every backend can store: no NUL characters (Postgres text cannot hold them, and
they make file paths invalid). Used by request schemas, form fields and URLs."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

NUL = "\x00"


def _no_nul(value: str) -> str:
    if NUL in value:
        raise ValueError("must not contain NUL characters")
    return value


NulFree = Annotated[str, AfterValidator(_no_nul)]
