"""Property-based fuzzing with hostile values in every string and number of every request body.

Each request schema has a full valid example below (every optional field filled in). Hypothesis picks one
leaf of it — a string, a number, or a key — and replaces it with a hostile value: a lone surrogate, NUL,
±1e308, the largest float, denormals, -0.0. Whatever the server answers:

- never a 5xx;
- nothing non-finite in any response;
- a rejected request (4xx) stored nothing: the experiment's export bundle, and the list of experiments, are
  byte-for-byte what they were;
- the experiment still answers its reads afterwards.

On both backends (``shared_api`` is one API per backend for the module).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.service.helpers import DOMAINS, create, seed_runs

HOSTILE_TEXT = ["\ud800", "\udfff", "x\ud83d", "\x00", "a\x00b"]
HOSTILE_NUMBERS = [1e308, -1e308, 1.7976931348623157e308, -1.7976931348623157e308, 5e-324, -5e-324,
                   2.2250738585072014e-308, -0.0, 1e-300]
MIXTURE = {"web": 0.4, "code": 0.3, "papers": 0.2, "math": 0.1}
JSON = {"content-type": "application/json"}

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    body: dict[str, Any]


def operations(exp_id: str, session_id: str, run_id: str) -> list[Operation]:
    """A valid request of every operation that takes a body, with every optional field present."""
    base = f"/v1/experiments/{exp_id}"
    report = {"mixture": MIXTURE, "fidelity": {"params": 1e6}, "metrics": {"loss/web": 3.0, "loss/code": 3.1},
              "cost": 1.5, "state": "completed", "client_run_id": "fuzz-report", "error": "none"}
    experiment = {
        "name": "fuzz-created",
        "domains": [{"name": d, "prior": p, "tokens_available": 1e9, "min_weight": 0.0, "max_weight": 0.9}
                    for d, p in zip(DOMAINS, (0.5, 0.2, 0.2, 0.1), strict=True)],
        "objective": {"metrics": ["loss/web", "loss/code"], "aggregate": "weighted_mean", "weights": [1.0, 2.0],
                      "goal": "minimize"},
        "fidelities": [{"name": "params", "min": 1e6, "max": 1e9, "target": 1e9, "default": 1e6}],
        "budget": {"target_tokens": 1e10, "max_epochs": 4.0},
        "search": {"initial_runs": 100_000, "default_method": "auto"},
        "metadata": {"team": "fuzz"},
    }
    return [
        Operation("POST", "/v1/experiments", experiment),
        Operation("PATCH", base, {"name": "fuzz-renamed", "state": "active", "budget": {"target_tokens": 1e10,
                  "max_epochs": 2.0}, "search": {"initial_runs": 100_000, "default_method": "design"},
                  "metadata": {"team": "fuzz"}}),
        Operation("POST", f"{base}/runs", report),
        Operation("POST", f"{base}/runs", {"id": run_id, "metrics": {"loss/web": 3.0, "loss/code": 3.0},
                                           "cost": 1.0, "state": "completed"}),
        Operation("POST", f"{base}/runs:batch", {"runs": [report, {**report, "client_run_id": "fuzz-2"}]}),
        Operation("POST", f"{base}/suggestions", {"count": 1, "fidelity": {"params": 1e6}, "method": "design",
                                                  "seed": 3, "client_id": "fuzzer"}),
        Operation("POST", f"{base}/suggestions", {"count": 1, "candidates": [
            {"mixture": MIXTURE, "fidelity": {"params": 1e6}}], "method": "design"}),
        Operation("POST", f"{base}/predict", {"mixtures": [MIXTURE], "fidelity": {"params": 1e9},
                                              "method": "law", "seed": 1}),
        Operation("POST", f"{base}/recommendation", {"candidates": [MIXTURE], "method": "design", "seed": 1}),
        Operation("POST", f"{base}/online-sessions", {
            "method": "doremi", "hyperparameters": {"eta": 1.0, "smoothing": 0.001},
            "initial_weights": {d: 0.25 for d in DOMAINS}, "reference_losses": {d: 3.0 for d in DOMAINS},
            "client_session_id": "fuzz-session"}),
        Operation("POST", f"{base}/online-sessions/{session_id}/observations", {
            "step": 10, "losses": {d: 3.0 for d in DOMAINS}, "split": "train"}),
        Operation("POST", f"{base}/refits", {"force": False, "method": "design", "laws": ["regmix"]}),
        Operation("PUT", f"{base}/reoptimization", {"enabled": False, "every_runs": 5, "every_minutes": 60.0,
                                                   "ready_suggestions": 2, "method": "design"}),
    ]


def leaves(value: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    """Every replaceable place in a JSON value: ``(path, "text" | "number" | "key")``."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*path, key), "key"
            yield from leaves(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from leaves(child, (*path, i))
    elif isinstance(value, str):
        yield path, "text"
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield path, "number"


def replaced(value: Any, path: Path, kind: str, hostile: Any) -> Any:
    """A deep copy of ``value`` with the leaf (or key) at ``path`` replaced by ``hostile``."""
    if not path:
        return hostile
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        out = {}
        for key, child in value.items():
            if key == head and not rest and kind == "key":
                out[hostile] = child
            elif key == head:
                out[key] = replaced(child, rest, kind, hostile)
            else:
                out[key] = child
        return out
    return [replaced(child, rest, kind, hostile) if i == head else child for i, child in enumerate(value)]


def strict_json(text: str) -> Any:
    """Parse a response, failing on NaN, Infinity and numbers that overflow to infinity."""

    def no_constant(name: str) -> float:
        raise AssertionError(f"non-finite {name} served")

    def finite_float(literal: str) -> float:
        number = float(literal)
        assert math.isfinite(number), f"{literal} overflows to a non-finite float"
        return number

    return json.loads(text, parse_constant=no_constant, parse_float=finite_float)


@pytest.fixture(scope="module")
def target(shared_api: TestClient) -> Callable[[], list[Operation]]:
    exp = create(shared_api, name=f"hostile-{uuid.uuid4().hex[:8]}", search={"initial_runs": 100_000})
    seed_runs(shared_api, exp["id"], 5)
    suggested = shared_api.post(f"/v1/experiments/{exp['id']}/suggestions",
                                json={"count": 1, "method": "design"}).json()["runs"][0]["id"]
    session = shared_api.post(f"/v1/experiments/{exp['id']}/online-sessions", json={"method": "stratified"})
    assert session.status_code == 201, session.text
    return lambda: operations(exp["id"], session.json()["id"], suggested)


def snapshot(api: TestClient, exp_id: str) -> tuple[str, str]:
    """Everything stored for the experiment (its bundle, jobs aside) and the names of every experiment."""
    bundle = api.get(f"/v1/experiments/{exp_id}:export")
    assert bundle.status_code == 200, bundle.text
    data = strict_json(bundle.text)
    data.pop("jobs", None)
    data.pop("exported_at", None)
    listed = api.get("/v1/experiments", params={"page_size": 1000})
    assert listed.status_code == 200, listed.text
    names = sorted(e["name"] for e in strict_json(listed.text)["experiments"])
    return json.dumps(data, sort_keys=True), json.dumps(names)


@st.composite
def hostile_requests(draw: st.DrawFn, ops: list[Operation]) -> tuple[Operation, Any, str]:
    op = draw(st.sampled_from(ops))
    path, kind = draw(st.sampled_from(list(leaves(op.body))))
    hostile = draw(st.sampled_from(HOSTILE_NUMBERS if kind == "number" else HOSTILE_TEXT))
    where = ".".join(str(p) for p in path) + (" (key)" if kind == "key" else "")
    return op, replaced(op.body, path, kind, hostile), f"{op.method} {op.path} {where} = {hostile!r}"


def test_hostile_values_never_break_the_api_or_store_a_rejected_request(
        shared_api: TestClient, target: Callable[[], list[Operation]]) -> None:
    ops = target()
    exp_path = ops[1].path

    @given(hostile_requests(ops))
    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(drawn: tuple[Operation, Any, str]) -> None:
        op, body, what = drawn
        exp_id = exp_path.rsplit("/", 1)[1]
        before = snapshot(shared_api, exp_id)
        r = shared_api.request(op.method, op.path, content=json.dumps(body).encode(), headers=JSON)
        assert r.status_code < 500, f"{what}: {r.status_code} {r.text[:300]}"
        served = strict_json(r.text)
        if r.status_code >= 400:
            assert snapshot(shared_api, exp_id) == before, f"{what}: a rejected request ({r.status_code}) " \
                                                           "changed what is stored"
            assert served["error"]["code"], what
        elif op.method == "POST" and op.path == "/v1/experiments":
            shared_api.patch(f"/v1/experiments/{served['id']}", json={"name": f"fuzz-{uuid.uuid4().hex}"})
        for read in (exp_path, f"{exp_path}/runs?page_size=1000", f"{exp_path}/recommendation",
                     f"{exp_path}/fits"):
            answer = shared_api.get(read)
            assert answer.status_code < 500, f"after {what}: GET {read} answered {answer.status_code}"
            strict_json(answer.text)
        shared_api.patch(exp_path, json={"state": "active"})

    check()
