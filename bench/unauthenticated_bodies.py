"""What large bodies without a token cost a server that requires tokens: time to the 401, liveness latency
meanwhile, and the server's peak memory.

    python -m bench.unauthenticated_bodies [--mib 60] [--concurrent 3] [--repo PATH]

``--repo`` runs the server from another checkout (e.g. an older commit in a worktree), for before/after.
The server is ``mixopt serve`` on a scratch SQLite file with ``MIXOPT_AUTH=required``; every request sends
its whole body before reading the answer, as a client would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import httpx

from bench.server_process import mixopt_serve, peak_rss_mib

ROOT = Path(__file__).resolve().parents[1]


async def post_without_token(port: int, body: bytes) -> tuple[float, int | None]:
    """Seconds to the answer, and its status (None when the server closed without one)."""
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"POST /v1/experiments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    status: int | None = None
    try:
        writer.write(head)
        for i in range(0, len(body), 1 << 20):
            writer.write(body[i:i + (1 << 20)])
            await writer.drain()
    except ConnectionError:
        pass  # answered and closed before the whole body went out: what a server should do
    try:
        line = await reader.readline()
        status = int(line.split()[1]) if line else None
    except (ConnectionError, IndexError, ValueError):
        pass
    writer.close()
    return time.perf_counter() - t0, status


async def probe_liveness(port: int, stop: asyncio.Event) -> list[float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=120) as client:
        while not stop.is_set():
            t0 = time.perf_counter()
            await client.get(f"http://127.0.0.1:{port}/healthz")
            latencies.append(time.perf_counter() - t0)
            await asyncio.sleep(0.05)
    return latencies


async def measure(port: int, body: bytes, concurrent: int) -> dict[str, object]:
    stop = asyncio.Event()
    probe = asyncio.create_task(probe_liveness(port, stop))
    await asyncio.sleep(0.5)
    answers = await asyncio.gather(*(post_without_token(port, body) for _ in range(concurrent)))
    stop.set()
    latencies = await probe
    return {"seconds_to_answer": [round(t, 3) for t, _ in answers], "statuses": [s for _, s in answers],
            "healthz_max_s": round(max(latencies), 3), "healthz_probes": len(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=60)
    parser.add_argument("--concurrent", type=int, default=3)
    parser.add_argument("--repo", type=Path, default=ROOT)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    runs = [{"mixture": {"a": 0.5, "b": 0.5}, "metrics": {"loss": 3.0}, "client_run_id": f"r{i}"}
            for i in range(args.mib * 1024 * 1024 // 80)]
    body = json.dumps({"runs": runs}).encode()[: args.mib * 1024 * 1024]
    with tempfile.TemporaryDirectory() as tmp:
        env = {"MIXOPT_DATABASE_URL": f"sqlite:///{tmp}/b.db", "MIXOPT_AUTH": "required",
               "MIXOPT_RATE_LIMIT_PER_S": "0"}
        with mixopt_serve(env, args.repo) as (url, server):
            baseline = peak_rss_mib(server.pid)
            result = asyncio.run(measure(httpx.URL(url).port or 80, body, args.concurrent))
            result.update(body_mib=round(len(body) / 2**20, 1), concurrent=args.concurrent,
                          rss_peak_mib_before=round(baseline), rss_peak_mib_after=round(peak_rss_mib(server.pid)),
                          repo=str(args.repo))
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
