"""The README's shell examples, run as written (bash), so that a newcomer who pastes them gets what they say.

Each test takes a ```bash block out of README.md by a line it contains, changes only where it points (the
server's URL, the data folder) and, for the law commands, how much work they do, then runs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from mixopt_client import MixoptClient

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]


def bash_block(containing: str) -> str:
    """The one ```bash block of the README with a line equal to ``containing``."""
    blocks = re.findall(r"^```bash\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)
    found = [b for b in blocks if containing in b.splitlines()]
    assert len(found) == 1, f"expected one README block with the line {containing!r}, found {len(found)}"
    return found[0]


def run_bash(script: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``script`` in bash (from the repository root unless ``cwd``), stopping at the first failing command,
    with this checkout's code on the path of the commands it runs."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(["bash", "-e", "-u", "-o", "pipefail", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)


def test_the_curl_loop_runs_twice_on_one_experiment(live: str) -> None:
    require(all(shutil.which(tool) for tool in ("curl", "jq")), "curl and jq are needed by the README's loop")
    line = "API=http://127.0.0.1:8000"
    script = bash_block(line).replace(line, f"API={live}", 1)
    outputs = []
    for _ in range(2):
        done = run_bash(script)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert "not_found" not in outputs[1], outputs[1]
    with MixoptClient(live) as client:
        [exp] = [e for e in client.iter_experiments() if e["name"] == "pile-4"]
        runs = client.list_runs(exp["id"])
    # Each pass asked for 4 suggestions on the same experiment; the reported run was stored once.
    assert sorted(r["state"] for r in runs) == ["completed"] + ["suggested"] * 8
    assert [r["client_run_id"] for r in runs if r["state"] == "completed"] == ["job-42"]


def test_the_mixing_law_commands_run_with_named_bounds(regmix_dir: Path) -> None:
    require(shutil.which("mixopt") is not None, "the mixopt command is not installed (scripts/install.sh)")
    line = "D=../shared/data/regmix"
    # Two quick laws, 2 folds and fewer candidates: the README's options, less work.
    quick = ('mixopt() { command mixopt "$@" --laws regmix_linear,aioli_loglinear --folds 2 --jobs 1 '
             '$([ "$2" = optimize ] && echo --candidates 5000); }\n')
    done = run_bash(quick + bash_block(line).replace(line, f"D={regmix_dir}", 1))
    assert done.returncode == 0, done.stderr
    report, end = json.JSONDecoder().raw_decode(done.stdout)
    assert report["selected"] in {"regmix_linear", "aioli_loglinear"} and report["n_test"] > 0
    lines = done.stdout[end:].strip().splitlines()
    assert lines[0].startswith("law: ")
    mixture = {name: float(weight) for name, weight in (row.split() for row in lines[1:])}
    assert not any(name.startswith("train_the_pile_") for name in mixture)
    assert mixture.get("github", 0.0) <= 0.2 + 1e-9


def test_the_command_line_loop_runs(live: str, tmp_path: Path) -> None:
    require(shutil.which("jq") is not None and shutil.which("mixopt") is not None,
            "jq and the mixopt command (scripts/install.sh) are needed by the README's loop")
    line = "URL=http://127.0.0.1:8000"
    script = bash_block(line).replace(line, f"URL={live}", 1)
    curl_spec = bash_block("API=http://127.0.0.1:8000").split("-d '", 1)[1].split("}' |", 1)[0] + "}"
    (tmp_path / "spec.json").write_text(curl_spec)  # "like the one above": the curl loop's body
    done = run_bash(script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with MixoptClient(live) as client:
        [exp] = list(client.iter_experiments(q="pile-4"))
        [run] = client.list_runs(exp["id"])
    assert run["state"] == "completed" and run["metrics"] == {"loss/pile_cc": 3.21}
    assert f"from 1 runs: predicted {run['objective']:.4f}" in done.stdout
    assert f"pile-4 ({exp['id']})" in done.stdout and "runs: 1 completed" in done.stdout


def test_the_continual_pretraining_example_finds_the_critical_ratio(live: str) -> None:
    require(all(shutil.which(tool) for tool in ("curl", "jq")), "curl and jq are needed by the README's example")
    line = "MIXOPT=http://127.0.0.1:8000"
    done = run_bash(bash_block(line).replace(line, f"MIXOPT={live}", 1))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["feasible"] and abs(answer["cmr"] - 0.64) < 0.01, answer  # as the README says
    assert answer["interval"]["lower"] <= answer["cmr"] <= answer["interval"]["upper"]
    assert abs(answer["general_loss"]["value"] - 3.858) < 1e-3
    with MixoptClient(live) as client:
        [exp] = [e for e in client.iter_experiments() if e["name"] == "finance-cpt"]
        assert client.cmr(exp["id"])["cmr"] == answer["cmr"]
        assert len(client.list_runs(exp["id"])) == 12


def test_the_outcome_constraint_example_recommends_a_feasible_mixture_and_a_front(live: str) -> None:
    require(all(shutil.which(tool) for tool in ("curl", "jq")), "curl and jq are needed by the README's example")
    line = "API=http://localhost:8000"
    script = bash_block(line).replace(line, f"API={live}", 1)
    done = run_bash(script)
    assert done.returncode == 0, done.stderr
    created, rec, front = (json.loads(doc) for doc in re.split(r"\n(?=[{0-9])", done.stdout.strip()))
    assert created == 30
    (c,) = rec["constraints"]
    assert c["metric"] == "loss/web" and c["probability"] >= 0.9
    # the prior was never run: its web loss (3.26) is the model's prediction, within the runs' spread
    assert abs(c["bound"] - 1.01 * (3.0 + 0.8 * 0.3 + 0.2 * 0.1)) < 0.03
    assert 3.0 + 0.8 * rec["mixture"]["code"] + 0.2 * rec["mixture"]["books"] <= c["bound"] + 0.01
    assert [a["name"] for a in front["axes"]] == ["objective", "loss/web"] and front["front"] >= 2


def test_the_warm_start_example_runs(live: str) -> None:
    require(all(shutil.which(tool) for tool in ("curl", "jq")), "curl and jq are needed by the README's example")
    line = "MIXOPT=http://127.0.0.1:8000   # the server of `make serve`"
    done = run_bash(bash_block(line).replace(line, f"MIXOPT={live}", 1))
    assert done.returncode == 0, done.stderr
    batch, counts, first, second, again = (json.loads(x) for x in done.stdout.strip().splitlines())
    assert batch["created"] == 2
    assert counts == {"run_counts": {"suggested": 0, "running": 0, "completed": 0, "failed": 0, "abandoned": 0},
                      "transferred_runs": 2}
    assert {first["loss"], second["loss"]} == {3.1, 3.6} and first["task"] == "target_objective"
    assert again["transferred"] == 0 and again["skipped"]["already_transferred"] == 2 and again["weight"] == 0.5
