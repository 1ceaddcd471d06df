"""What the benches that start a server process share: starting it, a free loopback port, peak memory."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mib(pid: int) -> float:
    """The process's resident-set high-water mark, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


def children_peak_rss_mib(pid: int) -> float:
    """The largest resident-set high-water mark among the process's live children (its job processes)."""
    peaks = [0.0]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(FileNotFoundError, RuntimeError):
                peaks.append(peak_rss_mib(int(child)))
    return max(peaks)


@contextlib.contextmanager
def mixopt_serve(env: dict[str, str], repo: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``mixopt serve`` from ``repo`` on a free loopback port, with ``MIXOPT_*`` settings ``env`` (on top of
    this process's environment); yields its base URL once ``/healthz`` answers, and the process."""
    port = free_port()
    full = {**os.environ, "PYTHONPATH": str(repo), "MIXOPT_LOG_LEVEL": "WARNING", **env}
    proc = subprocess.Popen([sys.executable, "-c", "from service.cli import main; main()", "serve",
                             "--port", str(port)], cwd=repo, env=full, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {proc.returncode}") from None
                time.sleep(0.2)  # still starting: this waits on its socket, not on a result
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(60)
