"""Client work run in separate OS processes by the concurrency tests (and a raw-socket client).

Kept free of test and service imports so a spawned process starts in a fraction of a second; each process
opens its own HTTP connections, as independent trainers would.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Outcome:
    """What one client process saw: every status, and the runs its calls returned."""

    statuses: list[int] = field(default_factory=list)
    #: client_run_id -> run id, for each report answered 200/201
    reported: dict[str, str] = field(default_factory=dict)
    #: suggested runs as returned: (run id, mixture)
    suggested: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Script:
    """One process's share of the traffic; ``start_at`` (epoch seconds) lines the processes up."""

    url: str
    experiment_id: str
    start_at: float
    reports: list[dict[str, Any]] = field(default_factory=list)
    suggestion_requests: int = 0
    suggestion_count: int = 2


def run_script(script: Script) -> Outcome:
    """Interleave reports and suggestion requests, as a fleet of trainers does."""
    out = Outcome()
    time.sleep(max(0.0, script.start_at - time.time()))
    base = f"/v1/experiments/{script.experiment_id}"
    every = max(1, len(script.reports) // max(1, script.suggestion_requests))
    asked = 0
    with httpx.Client(base_url=script.url, timeout=60) as client:
        for i, body in enumerate(script.reports):
            r = client.post(f"{base}/runs", json=body)
            _record(out, r)
            if r.status_code in (200, 201) and body.get("client_run_id"):
                out.reported[body["client_run_id"]] = r.json()["id"]
            if asked < script.suggestion_requests and i % every == every - 1:
                asked += 1
                _suggest(client, base, script.suggestion_count, out)
        while asked < script.suggestion_requests:
            asked += 1
            _suggest(client, base, script.suggestion_count, out)
    return out


def patch_many(url: str, experiment_id: str, start_at: float, patches: list[dict[str, Any]]) -> Outcome:
    """Apply ``patches`` to the experiment one after another."""
    out = Outcome()
    time.sleep(max(0.0, start_at - time.time()))
    with httpx.Client(base_url=url, timeout=60) as client:
        for body in patches:
            _record(out, client.patch(f"/v1/experiments/{experiment_id}", json=body))
    return out


def _suggest(client: httpx.Client, base: str, count: int, out: Outcome) -> None:
    r = client.post(f"{base}/suggestions", json={"count": count, "method": "design"})
    _record(out, r)
    if r.status_code == 201:
        out.suggested += [(run["id"], run["mixture"]) for run in r.json()["runs"]]
    elif r.status_code == 202:
        out.errors.append("suggestion answered 202: it waited past the synchronous budget")


def _record(out: Outcome, r: httpx.Response) -> None:
    out.statuses.append(r.status_code)
    if r.status_code >= 400:
        out.errors.append(f"{r.request.method} {r.request.url.path} -> {r.status_code} {r.text[:300]}")


def post_and_drop(url: str, path: str, body: dict[str, Any], *, send_whole_body: bool) -> None:
    """Send a POST and reset the connection without reading a byte of the answer.

    With ``send_whole_body`` the server has the complete request and may well store it; without, it sees
    half a body and then the reset. ``SO_LINGER`` 0 makes the close a TCP RST, as a killed client's is.
    """
    payload = json.dumps(body).encode()
    host, port = url.removeprefix("http://").split(":")
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + (payload if send_whole_body else payload[: len(payload) // 2]))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
