"""The tiny-LM example end to end on CPU: real training driving the service through its Python client.

Budgets are tiny (thousands of tokens, the 23k-parameter size) so the module runs in well under a minute
on two cores; the assertions are about the plumbing being real: losses measured, runs stored, a valid
recommendation, an online trajectory made of the posted steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from mixopt_client import MixoptClient

from examples.tiny_lm import online, orchestrate
from examples.tiny_lm.connection import connect
from examples.tiny_lm.corpus import SOURCES, Domain, load_corpus, load_domain, split_bytes, strip_roff
from examples.tiny_lm.model import SIZES, TinyLM, n_params
from examples.tiny_lm.train import DeviceCorpus, TrainConfig, train_many

UNTRAINED = math.log(256)  # an untrained byte model predicts ~uniformly: 5.545 nats
DOMAINS = ["code", "pydoc", "legal"]  # present wherever Python and Debian's base-files are
CPU = torch.device("cpu")  # the smoke test's device even where CUDA exists: exact, repeatable arithmetic
BASE = TrainConfig("xxs", 0, context=64, batch=8, eval_windows=8)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models are overhead-bound: more intra-op threads only contend (2x the CPU time on 2 cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def domains() -> list[Domain]:
    return load_corpus(DOMAINS, cap_bytes=100_000, log=lambda _: None)


@pytest.fixture(scope="module")
def client() -> Iterator[MixoptClient]:
    with connect(None) as c:
        yield c


def test_split_is_deterministic_and_disjoint() -> None:
    a = load_domain(SOURCES["code"], 50_000, 0.1)
    b = load_domain(SOURCES["code"], 50_000, 0.1)
    assert a is not None and b is not None
    assert torch.equal(a.train, b.train) and torch.equal(a.val, b.val)
    assert len(a.train) + len(a.val) == 50_000 and len(a.val) == 5_000
    train, val = split_bytes(b"0123456789", 0.3)
    assert bytes(train.tolist()) == b"0123456" and bytes(val.tolist()) == b"789"


def test_strip_roff_keeps_text_and_drops_markup() -> None:
    page = '.\\" comment\n.TH "LS" "1"\n.SH "NAME"\nls \\- list \\fBdirectory\\fP contents\n.sp\n.B \\-a\n'
    assert strip_roff(page) == "NAME\nls - list directory contents\n-a"


def test_model_is_causal() -> None:
    model = TinyLM(SIZES["xxs"], context=32, generator=torch.Generator().manual_seed(0)).eval()
    x = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(1))
    y = x.clone()
    y[:, 20] = (y[:, 20] + 1) % 256
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.allclose(a[:, :20], b[:, :20], atol=1e-6)
    assert not torch.allclose(a[:, 20:], b[:, 20:])
    assert n_params(SIZES["xxs"], 32) == model.n_params()


def test_runs_do_not_depend_on_threading(domains: list[Domain]) -> None:
    corpus = DeviceCorpus(domains, CPU, BASE.context, BASE.eval_windows)
    mix = {"code": 0.5, "pydoc": 0.3, "legal": 0.2}
    jobs = [(mix, TrainConfig("xxs", 4096, context=64, batch=8, eval_windows=8, seed=s)) for s in (0, 1)]
    alone, together = train_many(corpus, jobs, parallel=1), train_many(corpus, jobs, parallel=2)
    assert [r.losses for r in alone] == [r.losses for r in together]
    assert alone[0].losses != alone[1].losses  # the seed matters


@pytest.mark.slow
def test_orchestrator_end_to_end(client: MixoptClient, domains: list[Domain], tmp_path: Path) -> None:
    plan = orchestrate.Plan(
        sizes=["xxs", "xs"],
        tokens=[8192, 8192],
        rounds=3,
        per_round=2,
        initial=4,
        initial_larger=2,
        final_seeds=1,
        base=BASE,
    )
    result = orchestrate.run(client, domains, plan, CPU, tmp_path, log=lambda _: None)

    runs = result["runs"]
    assert len(runs) >= 4 + 2 + 1  # the design, then at least one model-based suggestion
    for r in runs:
        assert set(r["losses"]) == set(DOMAINS)
        assert all(math.isfinite(v) and v < UNTRAINED - 0.5 for v in r["losses"].values())
        assert r["cost_s"] > 0
    assert {r["size"] for r in runs} == {"xxs", "xs"}
    assert any(r["method"] != "design" for r in runs)
    stored = client.list_runs(result["experiment_id"], state=["completed"])
    assert result["stored_runs"] == len(stored) == len(runs)
    assert {s["id"] for s in stored} == {r["id"] for r in runs}

    mixture = result["recommendation"]["mixture"]
    assert set(mixture) == set(DOMAINS) and all(w >= 0 for w in mixture.values())
    assert sum(mixture.values()) == pytest.approx(1.0, abs=1e-9)
    assert any(f["selected"] for f in result["fits"])
    assert set(result["finals"]) == {"recommended", "uniform", "natural"}
    assert all(r["objective"] < UNTRAINED - 0.5 for rows in result["finals"].values() for r in rows)
    assert (tmp_path / "search.json").exists() and (tmp_path / "search.png").stat().st_size > 10_000


def test_failed_training_hands_suggestions_back(
    client: MixoptClient, domains: list[Domain], monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = orchestrate.Plan(
        sizes=["xxs", "xs"],
        tokens=[4096, 4096],
        rounds=1,
        per_round=1,
        initial=3,
        initial_larger=1,
        final_seeds=1,
        base=BASE,
    )
    corpus = DeviceCorpus(domains, CPU, BASE.context, BASE.eval_windows)
    exp = client.create_experiment(orchestrate.experiment_spec("tiny-lm-failing", domains, plan, "cpu"))

    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(orchestrate, "train_many", out_of_memory)
    with pytest.raises(RuntimeError, match="out of memory"):
        orchestrate.Search(client, corpus, plan, exp, log=lambda _: None).round(1)
    assert len(client.list_runs(exp["id"], state=["failed"])) == 4
    assert client.list_runs(exp["id"], state=["suggested"]) == []


@pytest.mark.slow
def test_online_aioli_follows_the_session(
    client: MixoptClient, domains: list[Domain], tmp_path: Path
) -> None:
    hp = {"probe_steps": 2, "sweeps": 1, "exploit_steps": 4}  # a round: 3 probes x 2 steps + 4 steps
    cfg = TrainConfig("xxs", 0, context=64, batch=8, eval_windows=8)
    result = online.run(
        client,
        domains,
        cfg,
        "aioli",
        30,
        hp,
        CPU,
        tmp_path,
        observe_windows=4,
        baselines=False,
        log=lambda _: None,
    )

    posted = result["posted_steps"]
    assert posted[0] == 0 and posted[-1] == 30 and posted == sorted(set(posted))
    traj = result["trajectory"]
    assert [p["step"] for p in traj] == posted
    assert all(p["split"] == "validation" for p in traj)
    assert {p["phase"] for p in traj} >= {"probe", "exploit"}
    assert posted[:5] == [0, 2, 4, 6, 10]  # the probe/exploit schedule the session handed out
    assert all(sum(p["weights"].values()) == pytest.approx(1.0) for p in traj)
    assert traj[-1]["losses"]["code"] < traj[0]["losses"]["code"] - 0.5
    assert result["runs"]["online"]["objective"] < UNTRAINED - 0.5
    assert (tmp_path / "online-aioli.png").exists()
