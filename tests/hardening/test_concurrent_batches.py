"""Batches that share new client_run_ids, sent at once (with single reports of the same ids racing them).

Each must get the answer it would get sent alone: 200 with the stored runs, or a 409 where its payload
contradicts what another request stored first; never a 500. Whatever the interleaving, every id is stored
exactly once, as one of the requests that was answered 2xx reported it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from httpx import Response

from tests.service.helpers import DOMAINS, create, synthetic_losses

BATCHES, BATCH_SIZE, STRIDE = 8, 400, 200


def _report(i: int, loss_shift: float = 0.0) -> dict[str, Any]:
    w = np.random.default_rng(i).dirichlet(np.ones(len(DOMAINS)))
    metrics = {k: x + loss_shift for k, x in synthetic_losses(w).items()}
    return {"mixture": dict(zip(DOMAINS, w.tolist(), strict=True)), "fidelity": {"params": 1e6},
            "metrics": metrics, "client_run_id": f"cr-{i}"}


def _at_once(calls: list[Callable[[], Response]]) -> list[Response]:
    """Run every call on its own thread, released together by a barrier; the answers in call order."""
    barrier = threading.Barrier(len(calls))
    answers: list[Response | None] = [None] * len(calls)

    def run(k: int) -> None:
        barrier.wait()
        answers[k] = calls[k]()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(a is not None for a in answers)
    return answers  # type: ignore[return-value]


def _stored(api: TestClient, exp_id: str) -> dict[str, tuple[str, dict[str, float]]]:
    """client_run_id -> (run id, metrics) of every stored run, asserting none is stored twice."""
    runs: list[dict[str, Any]] = []
    token = None
    while True:
        page = api.get(f"/v1/experiments/{exp_id}/runs",
                       params={"page_size": 1000, **({"page_token": token} if token else {})}).json()
        runs += page["runs"]
        token = page["next_page_token"]
        if not token:
            break
    counts = Counter(r["client_run_id"] for r in runs)
    assert max(counts.values()) == 1, counts.most_common(3)
    return {r["client_run_id"]: (r["id"], r["metrics"]) for r in runs}


def test_overlapping_batches_sent_at_once_store_the_union_once(shared_api: TestClient) -> None:
    exp = create(shared_api, name="overlapping-batches")
    url = f"/v1/experiments/{exp['id']}/runs:batch"
    batches = [[_report(i) for i in range(b * STRIDE, b * STRIDE + BATCH_SIZE)] for b in range(BATCHES)]
    answers = _at_once([lambda runs=runs: shared_api.post(url, json={"runs": runs}) for runs in batches])  # type: ignore[misc]

    assert [a.status_code for a in answers] == [200] * BATCHES, [a.text[:300] for a in answers if a.is_error]
    stored = _stored(shared_api, exp["id"])
    assert set(stored) == {r["client_run_id"] for runs in batches for r in runs}
    for runs, answer in zip(batches, answers, strict=True):
        assert answer.json()["run_ids"] == [stored[r["client_run_id"]][0] for r in runs]
    assert sum(a.json()["created"] for a in answers) == len(stored)
    assert shared_api.get(f"/v1/experiments/{exp['id']}").json()["run_counts"]["completed"] == len(stored)


def test_a_batch_racing_single_reports_of_its_ids_is_answered_like_a_retry(shared_api: TestClient) -> None:
    exp = create(shared_api, name="batch-vs-singles")
    base = f"/v1/experiments/{exp['id']}"
    ids = range(300)
    batch = [_report(i) for i in ids]

    def singles(order: list[int]) -> Callable[[], Response]:
        def send() -> Response:
            last = None
            for i in order:
                last = shared_api.post(f"{base}/runs", json=_report(i))
                assert last.status_code in (200, 201), last.text[:300]
            assert last is not None
            return last
        return send

    # Three reporters walk the ids in different orders, so the batch meets runs committed before its read,
    # after its read, and still uncommitted.
    orders = [list(ids), list(reversed(ids)), list(ids)[150:] + list(ids)[:150]]
    answers = _at_once([lambda: shared_api.post(f"{base}/runs:batch", json={"runs": batch}),
                        *[singles(o) for o in orders]])

    assert answers[0].status_code == 200, answers[0].text[:300]
    stored = _stored(shared_api, exp["id"])
    assert set(stored) == {r["client_run_id"] for r in batch}
    assert answers[0].json()["run_ids"] == [stored[r["client_run_id"]][0] for r in batch]


def test_racing_batches_that_disagree_answer_409_and_store_one_version_whole(shared_api: TestClient) -> None:
    exp = create(shared_api, name="disagreeing-batches")
    url = f"/v1/experiments/{exp['id']}/runs:batch"
    # Pairs of batches over the same ids, differing in every loss: whichever commits first is stored, and
    # the other is a contradiction of it (409, nothing of it stored).
    pairs = [([_report(i) for i in range(p * 200, p * 200 + 200)],
              [_report(i, loss_shift=1.0) for i in range(p * 200, p * 200 + 200)]) for p in range(3)]
    answers = _at_once([lambda runs=runs: shared_api.post(url, json={"runs": runs})  # type: ignore[misc]
                        for pair in pairs for runs in pair])

    statuses = [a.status_code for a in answers]
    assert sorted(statuses[0::2] + statuses[1::2]) == [200] * 3 + [409] * 3, [a.text[:200] for a in answers]
    stored = _stored(shared_api, exp["id"])
    for k, pair in enumerate(pairs):
        ok, rejected = (0, 1) if statuses[2 * k] == 200 else (1, 0)
        assert statuses[2 * k + rejected] == 409
        assert answers[2 * k + rejected].json()["error"]["code"] == "run_final"
        for r in pair[ok]:
            assert stored[r["client_run_id"]][1] == r["metrics"]
    assert len(stored) == sum(len(first) for first, _ in pairs)
