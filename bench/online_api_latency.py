"""Server time of one online observation over the real API at 22 domains, on SQLite and PostgreSQL.

Server time is the API's own ``server-timing`` header (request in to response out, database included),
so client overhead is not counted. Prints a table and writes bench/results/online_api_latency.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient  # noqa: E402

from service.api.app import create_app  # noqa: E402
from service.settings import Settings  # noqa: E402

N_DOMAINS, N_OBS = 22, 400
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def measure(url: str, method: str) -> dict[str, float]:
    domains = [f"d{i}" for i in range(N_DOMAINS)]
    with TestClient(create_app(Settings(database_url=url, auto_migrate=True, log_level="WARNING"))) as api:
        exp = api.post("/v1/experiments", json={"name": f"bench-{uuid.uuid4().hex[:6]}",
                                                "domains": [{"name": d} for d in domains],
                                                "objective": {"metrics": ["loss"]}}).json()
        body = {"method": method}
        if method == "doremi":
            body["reference_losses"] = {d: 3.0 for d in domains}
        ses = api.post(f"/v1/experiments/{exp['id']}/online-sessions", json=body).json()
        rng = np.random.default_rng(0)
        times, step = [], 0
        directive = ses["directive"]
        for _ in range(N_OBS):
            step += max(directive["train_steps"], 1)
            losses = {d: float(3.5 - 0.1 * np.log1p(step) + rng.normal(0, 0.01)) for d in domains}
            r = api.post(f"/v1/experiments/{exp['id']}/online-sessions/{ses['id']}/observations",
                         json={"step": step, "losses": losses})
            directive = r.json()["directive"]
            times.append(float(r.headers["server-timing"].split("dur=")[1]))
    t = np.array(times)
    return {"median_ms": float(np.median(t)), "p99_ms": float(np.percentile(t, 99)), "n": len(t)}


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        backends = {"sqlite": f"sqlite:///{tmp}/bench.db"}
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        name = f"mixopt_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        backends["postgresql"] = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
        try:
            for backend, url in backends.items():
                for method in ("doremi", "aioli"):
                    rows.append({"backend": backend, "method": method, "domains": N_DOMAINS, **measure(url, method)})
        finally:
            with admin.connect() as c:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print(f"{'backend':<12}{'method':<8}{'domains':>8}{'median ms':>11}{'p99 ms':>9}")
    for r in rows:
        print(f"{r['backend']:<12}{r['method']:<8}{r['domains']:>8}{r['median_ms']:>11.2f}{r['p99_ms']:>9.2f}")
    out = Path(__file__).parent / "results" / "online_api_latency.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
