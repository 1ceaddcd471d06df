"""The ``page_size`` query parameter of every list endpoint, capped by ``MIXOPT_MAX_PAGE_SIZE``.

A dependency rather than ``Query(le=...)``: the cap is a setting, read per app, and a too-large page is
refused with the same error shape and field name as a bad ``page_token``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from service.errors import InvalidInput

DEFAULT_PAGE_SIZE = 100


Size = Annotated[int | None, Query(ge=1, description="items per page (default 100), at most "
                                                    "MIXOPT_MAX_PAGE_SIZE (1000 unless set)")]


async def page_size(request: Request, page_size: Size = None) -> int:
    """Async, like every cheap dependency here: a plain ``def`` would cost a thread-pool hop per request."""
    limit = request.app.state.mixopt.settings.max_page_size
    if page_size is None:
        return min(DEFAULT_PAGE_SIZE, limit)
    if page_size > limit:
        raise InvalidInput(f"page_size is at most {limit}; follow next_page_token for more",
                           field="page_size", code="page_size_too_large")
    return page_size


PageSize = Annotated[int, Depends(page_size)]
