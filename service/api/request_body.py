"""Request text held to what every store and every response can hold, and large bodies decoded off the loop.

Python's JSON decoder accepts a lone UTF-16 surrogate (``"\\ud800"`` is a valid JSON escape, and
CESU-style bytes decode too), but no UTF-8 encoder can write one back: such a string passed validation,
was stored by SQLite, and then failed every response that carried it. PostgreSQL text cannot hold NUL
either. So every string of a request, keys included, is checked once here, before any route sees it, and
refused with a 422 naming the field.

FastAPI decodes JSON bodies on the event loop; a body of many MiB would hold every other request, health
probes included, for seconds. :class:`CheckedRoute` decodes bodies over :data:`OFF_LOOP_BYTES` in the
thread pool and hands the result to FastAPI, so the body is decoded once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from service.errors import ErrorCode, InvalidInput, NotFound

#: Bodies larger than this are decoded in the thread pool rather than on the event loop.
OFF_LOOP_BYTES = 64 * 1024

_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
#: How a NUL or a surrogate can reach a decoded string: as a ``\\u`` escape, or as CESU-8 bytes (``ED A0``
#: to ``ED BF``). A body without any of these (almost every body) needs no walk over its strings.
_MAYBE_BAD = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])|\xed[\xa0-\xbf]")

Location = tuple[str | int, ...]


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored or served, or None when it can."""
    found = _BAD_CHAR.search(text)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return "text may not contain NUL (U+0000)"
    return f"text must be valid Unicode: lone UTF-16 surrogate U+{ord(char):04X}"


def find_bad_text(value: Any, where: Location) -> tuple[Location, str] | None:
    """The location of the first string (or key) in a decoded JSON value that fails :func:`text_problem`.

    A bad key is reported at its object's location, since the key itself cannot be written in a message.
    Iterative, so nesting depth is bounded by what the JSON decoder accepted, not by Python's stack.
    """
    stack: list[tuple[Any, Location]] = [(value, where)]
    while stack:
        item, loc = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return loc, problem
        elif isinstance(item, dict):
            for key, child in item.items():
                problem = text_problem(key)
                if problem is not None:
                    return loc, f"key {ascii(key)}: {problem}"
                stack.append((child, (*loc, key)))
        elif isinstance(item, list):
            stack.extend((child, (*loc, i)) for i, child in enumerate(item))
    return None


def _refuse(loc: Location, problem: str) -> RequestValidationError:
    return RequestValidationError([{"type": "invalid_text", "loc": loc, "msg": problem, "input": None}])


async def decode_json(body: bytes) -> Any:
    """``json.loads``, in the thread pool when the body is large."""
    if len(body) > OFF_LOOP_BYTES:
        return await run_in_threadpool(json.loads, body)
    return json.loads(body)


def _is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


class CheckedRoute(APIRoute):
    """An API route whose path, query and JSON body hold only storable text (see the module docstring).

    A path parameter that cannot be an id (ids never hold NUL or surrogates) answers 404 like any unknown
    id; a query parameter or a body string answers 422 naming it.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        takes_body = self.body_field is not None

        async def checked(request: Request) -> Response:
            for name, value in request.path_params.items():
                if isinstance(value, str) and text_problem(value) is not None:
                    raise NotFound(f"{name.removesuffix('_id')} {ascii(value)} not found", field=name)
            for name, value in request.query_params.multi_items():
                if (problem := text_problem(name)) is not None:
                    raise InvalidInput(f"query parameter {ascii(name)}: {problem}", field="query",
                                       code=ErrorCode.unstorable_value)
                if (problem := text_problem(value)) is not None:
                    raise InvalidInput(f"{name}: {problem}", field=name, code=ErrorCode.unstorable_value)
            if takes_body and _is_json(request):
                body = await request.body()
                if body:
                    try:
                        decoded = await decode_json(body)
                    except ValueError:
                        pass  # FastAPI decodes it again and answers malformed JSON with the position
                    else:
                        if _MAYBE_BAD.search(body):
                            bad = find_bad_text(decoded, ("body",))
                            if bad is not None:
                                raise _refuse(*bad)
                        request._json = decoded  # Starlette's cache of request.json(), which FastAPI reads
            return await handle(request)

        return checked
