"""scripts/install.sh picks torch's index on purpose: the CPU build on a machine without an NVIDIA GPU.

The script runs for real, in bash, with a stand-in for Python that records each call and answers the two
questions the script asks it (is torch already installed? does PyTorch's CPU index answer?), and a PATH
holding only what the script needs, plus ``nvidia-smi`` when the case has a GPU. Nothing is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install.sh"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"

STUB_PYTHON = """#!/bin/bash
echo "$*" >> "$STUB_LOG"
case "$*" in
  *importlib.metadata*) exit "$STUB_TORCH_INSTALLED" ;;
  *urlopen*) exit "$STUB_CPU_INDEX_ANSWERS" ;;
esac
"""


def run_install(tmp_path: Path, *, gpu: bool, cpu_index_answers: bool, torch_installed: bool = False,
                torch_index: str | None = None) -> list[str]:
    """Run the script; return the ``pip install`` calls it made, one string each."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "bash"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    python = bin_dir / "python-stub"
    python.write_text(STUB_PYTHON)
    python.chmod(0o755)
    if gpu:
        (bin_dir / "nvidia-smi").write_text("#!/bin/bash\n")
        (bin_dir / "nvidia-smi").chmod(0o755)
    log = tmp_path / "calls.log"
    env = {"PATH": str(bin_dir), "PYTHON": str(python), "STUB_LOG": str(log),
           "STUB_TORCH_INSTALLED": "0" if torch_installed else "1",
           "STUB_CPU_INDEX_ANSWERS": "0" if cpu_index_answers else "1", "HOME": os.environ.get("HOME", "/")}
    if torch_index is not None:
        env["MIXOPT_TORCH_INDEX"] = torch_index
    done = subprocess.run([str(bin_dir / "bash"), str(SCRIPT)], env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    return [line.split("pip install ", 1)[1] for line in log.read_text().splitlines() if "pip install" in line]


@pytest.mark.parametrize(("gpu", "cpu_index_answers", "torch_index", "torch_call"), [
    (False, True, None, f"--index-url {CPU_INDEX} torch==2.13.0"),  # ordinary machine: the CPU build
    (False, False, None, "torch==2.13.0"),  # only its own mirror reachable: the default index
    (True, True, None, "torch==2.13.0"),  # a GPU: the default index's CUDA build
    (False, True, "https://mirror.example/torch", "--index-url https://mirror.example/torch torch==2.13.0"),
    (True, False, "https://mirror.example/torch", "--index-url https://mirror.example/torch torch==2.13.0"),
], ids=["cpu-index", "cpu-index-unreachable", "gpu", "override", "override-on-gpu"])
def test_torch_comes_from_the_index_the_machine_calls_for(tmp_path: Path, gpu: bool, cpu_index_answers: bool,
                                                          torch_index: str | None, torch_call: str) -> None:
    calls = run_install(tmp_path, gpu=gpu, cpu_index_answers=cpu_index_answers, torch_index=torch_index)
    installed = [c.removeprefix("-q --disable-pip-version-check ") for c in calls]
    assert installed == [torch_call, "-e ./client", "-e .[test]"]


def test_a_torch_of_the_pinned_version_already_installed_is_kept(tmp_path: Path) -> None:
    calls = run_install(tmp_path, gpu=False, cpu_index_answers=True, torch_installed=True)
    assert [c.removeprefix("-q --disable-pip-version-check ") for c in calls] == ["-e ./client", "-e .[test]"]
