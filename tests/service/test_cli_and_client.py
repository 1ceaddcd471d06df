"""The CLI (migrate, import, demo) and the client's safe retries, against live servers over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from mixopt_client import MixoptClient

from service.cli import main
from service.embedded import embedded_server
from service.settings import Settings
from tests.service.helpers import spec


@pytest.fixture
def live(settings: Settings) -> Iterator[str]:
    with embedded_server(settings) as url:
        yield url


def test_migrate_creates_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    monkeypatch.setenv("MIXOPT_DATABASE_URL", url)
    from service.settings import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["migrate"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    tables = set(sa.inspect(sa.create_engine(url)).get_table_names())
    assert {"experiments", "runs", "jobs", "fits", "proposals", "alembic_version"} <= tables


def test_import_csv_is_idempotent(live: str, regmix_dir: Path) -> None:
    header = (regmix_dir / "train_mixture_1m.csv").read_text().splitlines()[0].strip().split(",")[1:]
    with MixoptClient(live) as client:
        exp = client.create_experiment({
            "name": "import", "domains": [{"name": c.removeprefix("train_the_pile_")} for c in header],
            "objective": {"metrics": ["metric/the_pile_pile_cc_val_loss"], "aggregate": "single"}})
        args = ["import", "--url", live, "--experiment", exp["id"],
                "--mixtures", str(regmix_dir / "train_mixture_1m.csv"),
                "--metrics", str(regmix_dir / "train_pile_loss_1m.csv"),
                "--mixture-prefix", "train_the_pile_", "--metric-prefix", "metric/", "--cost", "1"]
        first = CliRunner().invoke(main, args)
        assert first.exit_code == 0, first.output
        assert "created 512" in first.output
        second = CliRunner().invoke(main, args)
        assert "created 0, already present 512" in second.output
        assert client.get_experiment(exp["id"])["run_counts"]["completed"] == 512


def test_demo_runs_a_loop_end_to_end(live: str, regmix_dir: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--url", live, "--data", str(regmix_dir), "--rounds", "3",
                                       "--batch", "20"])
    assert result.exit_code == 0, result.output
    assert "round  3/3" in result.output and "recommended mixture" in result.output
    assert "pile_cc" in result.output.split("recommended mixture")[1]


class DropFirstResponse(httpx.HTTPTransport):
    """Forwards each request, but loses the first response to a POST on ``path_suffix``, as a flaky network
    would."""

    def __init__(self, path_suffix: str = "/runs") -> None:
        super().__init__()
        self.dropped = 0
        self.path_suffix = path_suffix

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST" and request.url.path.endswith(self.path_suffix) and self.dropped == 0:
            response.read()
            self.dropped += 1
            raise httpx.ReadError("connection reset after the server answered", request=request)
        return response


def test_client_retry_of_a_suggestion_request_hands_out_one_batch(live: str) -> None:
    transport = DropFirstResponse("/suggestions")
    with MixoptClient(live, transport=transport) as client:
        exp = client.create_experiment(spec())
        sugg = client.suggest(exp["id"], 3)
        assert transport.dropped == 1
        pending = client.list_runs(exp["id"], state=["suggested"])
        assert sorted(s.id for s in sugg) == sorted(r["id"] for r in pending) and len(pending) == 3
        assert len({r["client_id"] for r in pending}) == 1  # the call named itself
        again = client.suggest(exp["id"], 3)  # a new call: new runs
        assert not {s.id for s in again} & {s.id for s in sugg}


def test_client_retry_after_lost_response_stores_one_run(live: str) -> None:
    transport = DropFirstResponse()
    with MixoptClient(live, transport=transport) as client:
        exp = client.create_experiment(spec())
        run = client.report(exp["id"], mixture={"web": 0.5, "code": 0.2, "papers": 0.2, "math": 0.1004},
                            fidelity={"params": 1e6}, metrics={"loss/web": 3.0, "loss/code": 3.1})
        assert transport.dropped == 1
        assert [r["id"] for r in client.list_runs(exp["id"])] == [run["id"]]
        assert abs(sum(run["mixture"].values()) - 1) < 1e-12  # renormalised by the client (documented)
        sugg = client.suggest(exp["id"], 3)
        assert len(sugg) == 3 and all(s.method == "design" for s in sugg)
