"""Added latency of our POST /v1/chat/completions over the same LiteLLM call made directly, and the same for
LiteLLM's own proxy server in front of the same fake LLM: p50/p99 at 1 and at 50 concurrent clients, for a
non-streamed completion (whole answer) and for a streamed one (time to the first content chunk).

    ASSISTANTS_DATA_DIR=var/bench .venv/bin/python bench/gateway.py [--samples 200] [--clients 1,50]
        [--proxy-python /tmp/gw-proxy-venv/bin/python]

Starts its own fake LLM (a separate process), `manage.py serve` on the embedded stack under ASSISTANTS_DATA_DIR
(default var/bench) and, when --proxy-python names a Python with `litellm[proxy]` installed, `litellm --config`
with one model pointing at the same fake (one worker, like our one uvicorn process). Targets: added p50 <= 3 ms at
1 client, and below LiteLLM's proxy at both concurrencies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("ASSISTANTS_DATA_DIR", str(ROOT / "var" / "bench"))

import httpx  # noqa: E402

from tests import live as live_mod  # noqa: E402

PROMPT = [{"role": "user", "content": "benchmark prompt with a few words"}]
PROXY_KEY = "sk-bench-proxy-master"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def start_fake() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fake_llm", "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def start_proxy(python: str, fake_url: str, workdir: Path) -> tuple[subprocess.Popen, str]:
    port = live_mod.free_port()
    config = workdir / "litellm-proxy.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: gpt-4o-mini\n"
        f"    litellm_params: {{model: openai/gpt-4o-mini, api_base: '{fake_url}', api_key: sk-fake}}\n"
        "litellm_settings: {num_retries: 0, request_timeout: 60, set_verbose: false}\n"
        f"general_settings: {{master_key: {PROXY_KEY}}}\n")
    litellm_bin = str(Path(python).parent / "litellm")
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    proc = subprocess.Popen([litellm_bin, "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                             "--num_workers", "1"], cwd=workdir, env=env, stdout=open(workdir / "proxy.log", "ab"),
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # its imports alone take minutes on a loaded machine
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("litellm proxy exited:\n" + (workdir / "proxy.log").read_text()[-3000:])
        try:
            if httpx.get(f"{base}/health/liveliness", timeout=2).status_code == 200:
                return proc, f"{base}/v1"
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError("litellm proxy not ready in 600 s")


async def direct_call(fake_url: str, stream: bool) -> float:
    import litellm

    started = time.perf_counter()
    # the call the gateway makes (gateway/provider.py: no retries, the timeout, drop_params)
    response = await litellm.acompletion(model="gpt-4o-mini", messages=PROMPT, api_base=fake_url, api_key="sk-fake",
                                         stream=stream, num_retries=0, max_retries=0, timeout=600,
                                         drop_params=True, _skip_mcp_handler=True)
    if not stream:
        return time.perf_counter() - started
    elapsed = None
    async for chunk in response:
        if elapsed is None and chunk.choices and chunk.choices[0].delta.content:
            elapsed = time.perf_counter() - started
    return elapsed


class Http1:
    """A keep-alive HTTP/1.1 client in a few lines, for ours and the proxy alike: its own cost per request is a
    fraction of httpx's (which the OpenAI SDK uses, `--client httpx`), so what it measures is the server's."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        rest = base.split("//", 1)[1]
        hostport, self.prefix = rest.split("/", 1)[0], "/" + rest.split("/", 1)[1]
        self.host, self.port = hostport.rsplit(":", 1)[0], int(hostport.rsplit(":", 1)[1])
        self.head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": hostport, **headers}.items())
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def post(self, path: str, body: dict, on_part=None) -> bytes:
        """The response body (de-chunked); ``on_part(bytes)`` sees each piece as it arrives."""
        payload = json.dumps(body).encode()
        request = (f"POST {self.prefix}{path} HTTP/1.1\r\n{self.head}Content-Type: application/json\r\n"
                   f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload
        while self.idle:
            reader, writer, used = self.idle.pop()
            if time.monotonic() - used < 2:  # well inside the servers' keep-alive (uvicorn: 5 s)
                break
            writer.close()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in
                  (line.partition(b":") for line in head.split(b"\r\n")[1:] if line)}
        parts = []
        if fields.get(b"transfer-encoding") == b"chunked":
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                part = (await reader.readexactly(size + 2))[:-2]
                parts.append(part)
                if on_part:
                    on_part(part)
            await reader.readuntil(b"\r\n")
        else:
            parts.append(await reader.readexactly(int(fields.get(b"content-length", b"0"))))
            if on_part:
                on_part(parts[0])
        if fields.get(b"connection") == b"close":
            writer.close()
        else:
            self.idle.append((reader, writer, time.monotonic()))
        data = b"".join(parts)
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {data[:200]!r}")
        return data


async def raw_call(http: Http1, stream: bool) -> float:
    body = {"model": "gpt-4o-mini", "messages": PROMPT}
    started = time.perf_counter()
    if not stream:
        json.loads(await http.post("/chat/completions", body))
        return time.perf_counter() - started
    first: list[float] = []
    buffer = bytearray()

    def on_part(part: bytes) -> None:
        if first:
            return
        buffer.extend(part)
        for line in bytes(buffer).split(b"\n"):
            if line.startswith(b"data: {") and b'"content":"' in line and b'"content":""' not in line:
                first.append(time.perf_counter() - started)
                return

    data = await http.post("/chat/completions", {**body, "stream": True}, on_part)
    assert data.rstrip().endswith(b"data: [DONE]"), data[-200:]
    return first[0]


async def http_call(http: httpx.AsyncClient, stream: bool) -> float:
    body = {"model": "gpt-4o-mini", "messages": PROMPT}
    started = time.perf_counter()
    if not stream:
        response = await http.post("/chat/completions", json=body)
        response.raise_for_status()
        response.json()
        return time.perf_counter() - started
    elapsed = None
    async with http.stream("POST", "/chat/completions", json={**body, "stream": True}) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if elapsed is None and line.startswith("data: {") and '"content":"' in line \
                    and '"content":""' not in line:
                elapsed = time.perf_counter() - started
    return elapsed


async def measure(targets: dict, clients: int, per_client: int, stream: bool) -> dict[str, list[float]]:
    """At 1 client the targets alternate call by call (drift hits all alike); at N, N clients hit one target at
    once, then the next."""
    out: dict[str, list[float]] = {name: [] for name in targets}

    async def one(name: str, fn) -> None:
        try:
            out[name].append(await fn(stream))
        except Exception as exc:  # counted and shown, never hidden in the percentiles
            ERRORS.setdefault((name, clients, stream), []).append(f"{type(exc).__name__}: {exc}"[:200])

    if clients == 1:
        for _ in range(per_client):
            for name, fn in targets.items():
                await one(name, fn)
        return out
    for name, fn in targets.items():
        async def client(fn=fn, name=name):
            for _ in range(per_client):
                await one(name, fn)
        await asyncio.gather(*(client() for _ in range(clients)))
    return out


ERRORS: dict[tuple, list[str]] = {}


def cpu_seconds(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
            times = proc.cpu_times()
            total += times.user + times.system
    return total


async def cpu_per_request(targets: dict, pids: dict[str, list[int]], n: int = 100) -> dict[str, float]:
    """CPU milliseconds one non-streamed request costs: the server's processes for ours and the proxy, this
    process for the direct call (its LiteLLM work is what the server repeats). Unlike latency, CPU time hardly
    depends on how busy the machine is."""
    out = {}
    for name, fn in targets.items():
        before = time.process_time() if name == "direct" else cpu_seconds(pids[name])
        for _ in range(n):
            await fn(False)
        after = time.process_time() if name == "direct" else cpu_seconds(pids[name])
        out[name] = (after - before) / n * 1000
    return out


async def run(fake_url: str, base: str, proxy_base: str | None, samples: int, levels: list[int],
              pids: dict[str, list[int]], client: str) -> tuple[list[tuple], dict[str, float]]:
    # keep-alive shorter than uvicorn's 5 s: a connection idle while another target is measured is not reused
    # just as the server closes it (a client-side ReadError, not a server failure)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200, keepalive_expiry=2)

    def client_for(url: str, key: str):
        if client == "httpx":
            http = httpx.AsyncClient(base_url=url, timeout=60, limits=limits,
                                     headers={"Authorization": f"Bearer {key}"})
            return lambda s: http_call(http, s)
        raw = Http1(url, {"Authorization": f"Bearer {key}"})
        return lambda s: raw_call(raw, s)

    targets = {"direct": lambda s: direct_call(fake_url, s), "ours": client_for(base, live_mod.E2E_API_KEY)}
    if proxy_base:
        targets["litellm_proxy"] = client_for(proxy_base, PROXY_KEY)
    for stream in (False, True):  # warm every path (imports, connections, caches)
        await measure(targets, 1, 10, stream)
    rows = []
    for clients in levels:
        per_client = samples if clients == 1 else max(2, samples // clients * 2)
        for stream in (False, True):
            times = await measure(targets, clients, per_client, stream)
            d50 = statistics.median(times["direct"])
            for name in targets:
                if name == "direct":
                    continue
                t = times[name]
                rows.append((clients, "stream TTFT" if stream else "non-stream", name, len(t),
                             d50 * 1000, pct(times["direct"], 0.99) * 1000, statistics.median(t) * 1000,
                             pct(t, 0.99) * 1000, (statistics.median(t) - d50) * 1000,
                             (pct(t, 0.99) - pct(times["direct"], 0.99)) * 1000))
    return rows, await cpu_per_request(targets, pids)


def _children(pid: int) -> list[int]:
    import psutil

    return [child.pid for child in psutil.Process(pid).children(recursive=False)]


def _cmdline(pid: int) -> str:
    import psutil

    return " ".join(psutil.Process(pid).cmdline())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--clients", default="1,50", help="comma-separated concurrency levels (default 1,50)")
    parser.add_argument("--proxy-python", default="/tmp/gw-proxy-venv/bin/python",
                        help="a Python with litellm[proxy]; skipped when missing")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw",
                        help="the HTTP client for ours and the proxy: a minimal keep-alive HTTP/1.1 one (default), "
                             "or httpx (the OpenAI SDK's), whose own cost per request then counts as added latency")
    args = parser.parse_args()

    fake, fake_url = start_fake()
    live_mod.E2E_DATA_DIR = Path(os.environ["ASSISTANTS_DATA_DIR"]).resolve()
    live_mod.reset_e2e_stores()
    port = live_mod.free_port()
    log = live_mod.E2E_DATA_DIR / "serve.log"
    serve = live_mod.start_serve(fake_url, port, log, LOG_LEVEL="WARNING", MODEL_ALIASES_FILE="")
    base = f"http://127.0.0.1:{port}/v1"
    proxy = proxy_base = None
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    try:
        live_mod.wait_ready(base, serve, log)
        if Path(args.proxy_python).exists():
            proxy, proxy_base = start_proxy(args.proxy_python, fake_url, workdir)
        else:
            print(f"LiteLLM proxy skipped: {args.proxy_python} not found")
        pids = {"ours": [pid for pid in _children(serve.pid) if "uvicorn" in _cmdline(pid)],
                "litellm_proxy": [proxy.pid] if proxy is not None else []}
        rows, cpu = asyncio.run(run(fake_url, base, proxy_base, args.samples,
                                    [int(n) for n in args.clients.split(",")], pids, args.client))
        print(f"client: {args.client}")
        print("times in ms; added = target minus the direct LiteLLM call (p50 - p50, p99 - p99)")
        print(f"{'clients':>7} {'mode':<11} {'target':<14} {'n':>5} {'direct_p50':>10} {'direct_p99':>10} "
              f"{'p50':>8} {'p99':>8} {'added_p50':>9} {'added_p99':>9}")
        for row in rows:
            print(f"{row[0]:>7} {row[1]:<11} {row[2]:<14} {row[3]:>5} " + " ".join(
                f"{v:>{w}.2f}" for v, w in zip(row[4:], (10, 10, 8, 8, 9, 9), strict=True)))
        for (name, clients, stream), errors in ERRORS.items():
            print(f"ERRORS {name} clients={clients} stream={stream}: {len(errors)}, e.g. {errors[0]}")
        print("CPU ms per non-streamed request: " + ", ".join(f"{name} {ms:.2f}" for name, ms in cpu.items())
              + " (ours and the proxy: the server's processes; direct: the LiteLLM call in this process)")
        print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(20)
        live_mod.stop_serve(serve)
        fake.terminate()
        from assistants_project import embedded

        embedded.stop_redis(live_mod.E2E_DATA_DIR)
        embedded.stop_postgres(live_mod.E2E_DATA_DIR)


if __name__ == "__main__":
    main()
