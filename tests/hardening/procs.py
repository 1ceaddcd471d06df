"""Real server processes for the hardening tests: the API (``mixopt serve``) and private PostgreSQL servers.

A private PostgreSQL lives in its own temporary directory on its own port, so a test may stop and restart it
mid-traffic without touching the machine's cluster that other tests share.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from tests.workers.procs import CLI, Proc, free_port


class ApiServer:
    """``mixopt serve`` (one uvicorn process) on a free loopback port, logging to ``log``."""

    def __init__(self, database_url: str, log: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        base = {"MIXOPT_DATABASE_URL": database_url, "MIXOPT_AUTO_MIGRATE": "true",
                "MIXOPT_LOG_JSON": "false", "MIXOPT_LOG_LEVEL": "WARNING", "MIXOPT_RATE_LIMIT_PER_S": "0",
                "MIXOPT_SEED": "1234"}
        self.proc = Proc([sys.executable, "-c", CLI, "serve", "--port", str(self.port)], {**base, **env}, log)

    def wait_ready(self) -> ApiServer:
        """Block until ``/healthz`` answers (start-up imports the numerical stack: seconds)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.popen.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"API did not start:\n{self.proc.output()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.stop()


def postgres_bin() -> Path | None:
    """The directory of ``initdb``/``pg_ctl``: on PATH, else the newest Debian-style install."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    installs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(installs[-1]).parent if installs else None


class PrivatePostgres:
    """A throwaway PostgreSQL server (trust auth, fsync off) that only its test uses.

    PostgreSQL refuses to run as root, so under root its commands run as the ``postgres`` user, in a
    directory under the system temp dir (pytest's own tmp dirs are private to root).
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="mixopt-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.root, user="postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def _run(self, tool: str, *args: str) -> None:
        argv = [str(self.bindir / tool), *args]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "server.log"), "-w",
                  "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` disconnects every client at once (what a restart looks like to the API)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> str:
        admin = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url(name)

    def destroy(self) -> None:
        """Stop the server if it runs and delete its files."""
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
