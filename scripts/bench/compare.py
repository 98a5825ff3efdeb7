#!/usr/bin/env python3
"""Issue 13's benchmark: every figure of its table, load-test against Locust, on this machine.

vllm-sim is pinned to one core and the client to the other (taskset), the server's truth is
vllm-sim's own measured TTFT (its /metrics histogram's sum / count over the run: arrival to
first token, queue included; with no jitter every request's TTFT is nearly the same, so the
mean stands for the p50 and the p99; a few slow first tokens raise the mean, which can make
a p50 error slightly negative). Each figure is the median of BENCH_RUNS runs. Output format (stable, so
runs can be compared): one `figure | load-test | locust | goal` row per figure, then the
machine line.

Env: BENCH_RUNS (3), BENCH_SECONDS (20: length of each timed run), BENCH_LOCUST (1: 0 skips
Locust), BENCH_MEM_REQUESTS ("20000 200000": the memory-vs-run-length pair), LOCUST_VENV
(the cached venv), LOAD_TEST and VLLM_SIM (release binaries).
"""

import json
import math
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOAD_TEST = os.environ.get("LOAD_TEST", str(ROOT / "target/release/load-test"))
VLLM_SIM = os.environ.get("VLLM_SIM", str(ROOT / "target/release/vllm-sim"))
# load-test on reqwest (hyper) instead of its own HTTP/1.1 client, for the note comparing them
HYPER = ["--http-client", "reqwest"]
RAW = os.environ.get("RAW_SSE_CEILING", str(ROOT / "target/release/examples/raw_sse_ceiling"))
TLS_FRONT = os.environ.get("TLS_FRONT", str(ROOT / "target/release/examples/tls_front"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "20"))
WITH_LOCUST = os.environ.get("BENCH_LOCUST", "1") != "0"
MEM_REQUESTS = [int(x) for x in os.environ.get("BENCH_MEM_REQUESTS", "20000 200000").split()]
LOCUST = Path(os.environ.get("LOCUST_VENV", "")) / "bin" / "locust"
TOKENS = 128
PIN = os.cpu_count() and os.cpu_count() >= 2 and subprocess.run(
    ["sh", "-c", "command -v taskset"], capture_output=True
).returncode == 0


def pinned(core, argv):
    return (["taskset", "-c", str(core)] + argv) if PIN else argv


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Sim:
    """vllm-sim on core 1 with the given delays."""

    def __init__(self, ttft_ms, itl_ms):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(tempfile.mktemp(prefix="bench-sim-", suffix=".log"), "w")
        self.proc = subprocess.Popen(
            pinned(1, [VLLM_SIM, "--port", str(self.port), "--ttft", f"{ttft_ms}ms",
                       "--itl", f"{itl_ms}ms", "--max-num-seqs", "8192",
                       "--kv-cache-tokens", "100000000"]),
            stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(200):
            try:
                urllib.request.urlopen(self.url + "/health", timeout=1).read()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"vllm-sim did not start: see {self.log.name}")

    def ttft(self):
        """(sum, count) of the sim's TTFT histogram."""
        text = urllib.request.urlopen(self.url + "/metrics", timeout=5).read().decode()
        total = count = 0.0
        for line in text.splitlines():
            m = re.match(r'vllm:time_to_first_token_seconds_(sum|count)\{[^}]*\} (\S+)', line)
            if m:
                if m.group(1) == "sum":
                    total += float(m.group(2))
                else:
                    count += float(m.group(2))
        return total, count

    def cpu_s(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


class TlsFront:
    """`sim` behind examples/tls_front (a TLS-terminating relay with a CA of its own) on the
    sim's core, as an ingress in front of vLLM: load_test() takes it for a sim, with
    `flags` trusting its CA. The truth stays the sim's own TTFT."""

    def __init__(self, sim):
        self.sim = sim
        self.proc = subprocess.Popen(pinned(1, [TLS_FRONT, f"127.0.0.1:{sim.port}"]),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url, ca = self.proc.stdout.readline().split()
        self.flags = ["--vllm-ca-cert", ca]

    def ttft(self):
        return self.sim.ttft()

    def cpu_s(self):
        return self.sim.cpu_s()

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def child_run(argv, cwd=None):
    """Runs argv on core 0; returns (wall s, cpu s, peak RSS MB) of the child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    out = subprocess.run(pinned(0, argv), cwd=cwd, capture_output=True, text=True)
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode not in (0, 1):
        sys.stderr.write(out.stdout[-2000:] + out.stderr[-4000:])
        raise SystemExit(f"{argv[0]} failed ({out.returncode})")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: each run is measured in a
    # fresh process group below (measure_rss), this one is an upper bound
    return wall, cpu, after.ru_maxrss / 1024.0


def peak_rss_mb(argv):
    """Peak RSS of one run, measured alone (a fresh python child, so RUSAGE_CHILDREN is its own)."""
    code = ("import resource,subprocess,sys;"
            "r=subprocess.run(sys.argv[1:],capture_output=True);"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024.0);"
            "sys.exit(0 if r.returncode in (0,1) else r.returncode)")
    out = subprocess.run([sys.executable, "-c", code] + pinned(0, argv),
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def lt_argv(sim, concurrency, seconds, requests, d, extra=()):
    """load-test's command line for a run of `seconds` (or `requests`) into `d`."""
    argv = [LOAD_TEST, "--vllm-url", sim.url, "--adapter-name", "candidate",
            "--prompt-text", "Say something long.", "--max-tokens", str(TOKENS),
            "--ignore-eos", "--concurrency", str(concurrency), "--output-dir", d,
            "--progress-interval", "0", "--poll-interval", "0", "--traceparent", "false"]
    argv += ["--duration", f"{seconds}s"] if seconds else ["--num-requests", str(requests)]
    return argv + list(extra)


def load_test(sim, concurrency, seconds=None, requests=None, extra=()):
    """One load-test run (`extra`: more flags); returns a dict of figures."""
    d = tempfile.mkdtemp(prefix="bench-lt-")
    argv = lt_argv(sim, concurrency, seconds, requests, d, extra)
    s0, c0 = sim.ttft()
    sim_cpu0 = sim.cpu_s()
    wall, cpu, _ = child_run(argv)
    s1, c1 = sim.ttft()
    sim_cpu = sim.cpu_s() - sim_cpu0
    r = json.loads(Path(d, "load_test_results.json").read_text())
    c = r["client"]
    t = r["timing"]
    parse = lambda s: time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + s[19:-1])
    truth = (s1 - s0) / max(c1 - c0, 1)
    return {
        # per second of the measured window, counting the requests issued in it (the ones
        # still streaming at its end finish and count), as Locust's figure below counts the
        # requests of its --run-time: dividing by the window plus that drain (as the table of
        # 2026-12-05 did) caps even a perfect client at ~1,467/s at 1,024 streams
        "streams_s": c["requests_per_s"],
        "events_s": c["output_tokens_per_s"],
        "cpu_ms_per_request": cpu * 1e3 / max(c["successful_requests"], 1),
        "ttft_p50_err_ms": (c["ttft_s"]["p50"] - truth) * 1e3,
        "ttft_p99_err_ms": (c["ttft_s"]["p99"] - truth) * 1e3,
        "ttft_p50_s": c["ttft_s"]["p50"],
        "ttft_p99_s": c["ttft_s"]["p99"],
        "truth_s": truth,
        "startup_ms": (parse(t["load_start"]) - parse(t["started_at"])) * 1e3,
        "sim_cpu_share": sim_cpu / max(wall, 1e-9),
        "ok": c["successful_requests"],
        "argv": argv,
    }


LOCUSTFILE = r'''
import json, os, time
from locust import HttpUser, task, events

TTFT = []
N = [0, 0]  # completed streams, token events
BODY = {"model": "candidate", "prompt": "Say something long.", "max_tokens": %d,
        "ignore_eos": True, "stream": True}

class Streamer(HttpUser):
    # requests' streaming (iter_lines with chunk_size=None yields bytes as they arrive: a
    # fixed chunk size would hold the first token back until the buffer fills)
    @task
    def stream(self):
        t = time.perf_counter()
        first = None
        with self.client.post("/v1/completions", json=BODY, stream=True,
                              catch_response=True) as r:
            for line in r.iter_lines(chunk_size=None):
                if not line.startswith(b"data: {"):
                    continue
                if first is None:
                    first = time.perf_counter()
                N[1] += 1
            r.success()
        if first is not None:
            TTFT.append(first - t)
            N[0] += 1

@events.test_stop.add_listener
def _(environment, **kw):
    with open(os.environ["BENCH_LOCUST_OUT"], "w") as f:
        json.dump({"ttft": TTFT, "streams": N[0], "events": N[1]}, f)
''' % TOKENS


def locust(sim, users, seconds):
    d = Path(tempfile.mkdtemp(prefix="bench-locust-"))
    (d / "locustfile.py").write_text(LOCUSTFILE)
    out = d / "out.json"
    os.environ["BENCH_LOCUST_OUT"] = str(out)
    s0, c0 = sim.ttft()
    argv = [str(LOCUST), "-f", str(d / "locustfile.py"), "--headless", "-u", str(users),
            "-r", str(users), "--run-time", f"{seconds}s", "--host", sim.url,
            "--only-summary", "--stop-timeout", "5", "--loglevel", "ERROR"]
    wall, cpu, _ = child_run(argv, cwd=d)
    s1, c1 = sim.ttft()
    r = json.loads(out.read_text())
    ttft = sorted(r["ttft"])
    rank = lambda q: ttft[max(0, int(-(-q * len(ttft) // 1)) - 1)] if ttft else float("nan")
    truth = (s1 - s0) / max(c1 - c0, 1)
    return {
        "streams_s": r["streams"] / seconds,
        "events_s": r["events"] / seconds,
        "cpu_ms_per_request": cpu * 1e3 / max(r["streams"], 1),
        "ttft_p50_err_ms": (rank(0.5) - truth) * 1e3,
        "ttft_p99_err_ms": (rank(0.99) - truth) * 1e3,
        "argv": argv,
    }


def raw_ceiling(sim, concurrency, seconds):
    """examples/raw_sse_ceiling against `sim`: the same streams read without hyper, in each
    request's own task (what a lower-level body reader would cost): streams/s, CPU ms a
    request."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(pinned(0, [RAW, f"127.0.0.1:{sim.port}", str(concurrency), str(seconds)]),
                         capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        sys.stderr.write(out.stdout[-2000:] + out.stderr[-4000:])
        raise SystemExit(f"{RAW} failed ({out.returncode})")
    fields = dict(kv.split("=") for kv in out.stdout.split())
    n, wall = int(fields["requests"]), float(fields["wall_s"])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"streams_s": n / wall, "cpu_ms_per_request": cpu * 1000 / max(n, 1)}


def raw_ceiling_runs(ttft_ms, itl_ms, concurrency):
    """RUNS runs of raw_ceiling on a fresh sim with these delays."""
    sim = Sim(ttft_ms, itl_ms)
    try:
        return [raw_ceiling(sim, concurrency, SECONDS) for _ in range(RUNS)]
    finally:
        sim.stop()


class WireCapture:
    """tcpdump on lo, for the TTFT on the wire: from the packet carrying a request's `POST` to
    the first packet of its answer with an SSE `data:` line, per connection. Stamps are the
    kernel's, taken as the packets pass (the truth of what the client measures, with no
    server's view in it). Only packets with data are kept (PSH set), 256 bytes of each."""

    def __init__(self, port):
        self.port = port
        self.path = tempfile.mktemp(prefix="bench-wire-", suffix=".pcap")
        self.proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-s", "256", "-B", "262144", "-U", "-w", self.path,
             "--time-stamp-precision", "nano",
             f"tcp port {port} and (tcp[tcpflags] & tcp-push != 0)"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # tcpdump is listening

    def ttfts(self):
        """Stops the capture; every request's TTFT on the wire (s), and packets dropped."""
        time.sleep(0.5)
        self.proc.send_signal(2)
        err = self.proc.communicate(timeout=30)[1].decode()
        dropped = int((re.search(r"(\d+) packets dropped by kernel", err) or [0, 0])[1])
        data = Path(self.path).read_bytes()
        os.unlink(self.path)
        if len(data) < 24 or int.from_bytes(data[:4], "little") != 0xa1b23c4d:
            raise SystemExit(f"tcpdump wrote no nanosecond pcap: {err}")
        off, pending, out = 24, {}, []
        while off + 16 <= len(data):
            sec, nsec, incl = (int.from_bytes(data[off + i:off + i + 4], "little")
                               for i in (0, 4, 8))
            pkt = data[off + 16:off + 16 + incl]
            off += 16 + incl
            ip = pkt[14:]  # lo's link layer is Ethernet
            tcp = ip[(ip[0] & 15) * 4:]
            sport, dport = int.from_bytes(tcp[0:2], "big"), int.from_bytes(tcp[2:4], "big")
            payload = tcp[(tcp[12] >> 4) * 4:]
            t = sec + nsec * 1e-9
            if dport == self.port and payload.startswith(b"POST"):
                pending[sport] = t
            elif sport == self.port and dport in pending and b"data: " in payload:
                out.append(t - pending.pop(dport))
        return sorted(out), dropped


def can_capture():
    return os.geteuid() == 0 and subprocess.run(
        ["sh", "-c", "command -v tcpdump"], capture_output=True).returncode == 0


def nearest_rank(sorted_values, q):
    # the smallest value with at least q of the values at or below it (as load-test's)
    return sorted_values[max(0, math.ceil(len(sorted_values) * q) - 1)] if sorted_values else None


def wire_run(sim, concurrency, seconds):
    """One load-test run under a capture: its TTFT p50 / p99 against the wire's, and the wire's
    p99 against the sim's own mean (the server's tail its own figure does not see)."""
    cap = WireCapture(sim.port)
    r = load_test(sim, concurrency, seconds)
    wire, dropped = cap.ttfts()
    w50, w99 = nearest_rank(wire, 0.50), nearest_rank(wire, 0.99)
    return {
        "p50_err_ms": (r["ttft_p50_s"] - w50) * 1e3,
        "p99_err_ms": (r["ttft_p99_s"] - w99) * 1e3,
        "server_tail_ms": (w99 - r["truth_s"]) * 1e3,
        "requests": len(wire),
        "ok": r["ok"],
        "dropped": dropped,
    }


def median(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, unit=""):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}{unit}"
    return f"{v:.2f}{unit}" if abs(v) < 10 else f"{v:.1f}{unit}"


def main():
    rows = []
    note = []

    def row(name, lt, lc, goal):
        rows.append((name, lt, lc, goal))
        print(f"  {name} | {lt} | {lc} | {goal}", file=sys.stderr, flush=True)

    # 1,024 streams, TTFT 20 ms, ITL 5 ms
    sim = Sim(20, 5)
    try:
        lt = [load_test(sim, 1024, SECONDS) for _ in range(RUNS)]
        lc = [locust(sim, 1024, SECONDS) for _ in range(RUNS)] if WITH_LOCUST else []
        hyper_busy = [load_test(sim, 1024, SECONDS, extra=HYPER) for _ in range(RUNS)]
        rss_lt = peak_rss_mb(lt[0]["argv"])
        sim_share = max(r["sim_cpu_share"] for r in lt)
    finally:
        sim.stop()
    ideal = 1024 / (0.020 + 0.005 * (TOKENS - 1))
    row(f"completed streams/s at 1,024 (TTFT 20 ms, ITL 5 ms; ideal {ideal:,.0f})",
        fmt(median(lt, "streams_s")), fmt(median(lc, "streams_s")), ">= 1,500")
    row("token events/s parsed at 1,024", fmt(median(lt, "events_s")),
        fmt(median(lc, "events_s")), ">= 190k")
    row("client CPU per request at 1,024, start-up included (ms)",
        fmt(median(lt, "cpu_ms_per_request")), fmt(median(lc, "cpu_ms_per_request")), "<= 0.5")
    row("peak RSS at 1,024 streams (MB)", fmt(rss_lt), "-", "<= 50")
    note.append(f"vllm-sim used at most {sim_share * 100:.0f} % of its core at 1,024 streams"
                + (" (the server may be the limit)" if sim_share > 0.9 else " (not the limit)"))
    raw_busy = raw_ceiling_runs(20, 5, 1024)

    # zero-delay server, 256 streams
    sim = Sim(0, 0)
    try:
        lt = [load_test(sim, 256, SECONDS) for _ in range(RUNS)]
        lc = [locust(sim, 256, SECONDS) for _ in range(RUNS)] if WITH_LOCUST else []
        hyper_zero = [load_test(sim, 256, SECONDS, extra=HYPER) for _ in range(RUNS)]
        mem = [peak_rss_mb(lt_argv(sim, 256, None, n, tempfile.mkdtemp(prefix="bench-mem-")))
               for n in MEM_REQUESTS]
        sim_share = max(r["sim_cpu_share"] for r in lt)
    finally:
        sim.stop()
    row("zero-delay server, 256 concurrent (streams/s)", fmt(median(lt, "streams_s")),
        fmt(median(lc, "streams_s")), ">= 5,000")
    row("memory vs run length, 256 streams, zero delay (MB at "
        + " / ".join(f"{n:,}" for n in MEM_REQUESTS) + " requests)",
        " / ".join(fmt(m) for m in mem), "-", "flat (+16 MB at 1M vs 10k)")
    note.append(f"vllm-sim used at most {sim_share * 100:.0f} % of its core at zero delay"
                + (" (the server, not the client, is the limit)" if sim_share > 0.9 else
                   " (not the limit)"))
    raw_zero = raw_ceiling_runs(0, 0, 256)
    note.append("load-test --http-client reqwest (hyper reads each connection in a task of its "
                f"own): {fmt(median(hyper_busy, 'cpu_ms_per_request'))} ms CPU a request at "
                f"1,024, {fmt(median(hyper_zero, 'streams_s'))} streams/s at zero delay")
    note.append("without hyper (examples/raw_sse_ceiling: each stream read from its socket in "
                "its own task, same decoder and parser, no records): "
                f"{fmt(median(raw_busy, 'cpu_ms_per_request'))} ms CPU a request at 1,024, "
                f"{fmt(median(raw_zero, 'streams_s'))} streams/s at zero delay")

    # https: the own client (rustls over its timed sockets) against reqwest, 256 streams
    sim = Sim(20, 5)
    front = TlsFront(sim)
    try:
        tls = [load_test(front, 256, SECONDS, extra=front.flags) for _ in range(RUNS)]
        tls_hyper = [load_test(front, 256, SECONDS, extra=front.flags + HYPER)
                     for _ in range(RUNS)]
    finally:
        front.stop()
        sim.stop()
    note.append("over https at 256 streams (examples/tls_front, a TLS relay on the sim's core): "
                f"{fmt(median(tls, 'cpu_ms_per_request'))} ms CPU a request on the own client "
                f"(rustls), {fmt(median(tls_hyper, 'cpu_ms_per_request'))} ms on --http-client "
                f"reqwest; TTFT p50 error {fmt(median(tls, 'ttft_p50_err_ms'))} / "
                f"{fmt(median(tls_hyper, 'ttft_p50_err_ms'))} ms (the relay's own delay: "
                "the truth is the sim's)")

    # TTFT error against the server's truth at 1 / 64 / 512 streams
    sim = Sim(20, 5)
    try:
        errs_lt, errs_lc, p99_lt, p99_lc, startup = [], [], None, None, []
        for n in (1, 64, 512):
            secs = max(5, SECONDS // 2)
            lt = [load_test(sim, n, secs) for _ in range(RUNS)]
            lc = [locust(sim, n, secs) for _ in range(RUNS)] if WITH_LOCUST else []
            errs_lt.append(median(lt, "ttft_p50_err_ms"))
            errs_lc.append(median(lc, "ttft_p50_err_ms"))
            startup += [r["startup_ms"] for r in lt]
            if n == 512:
                p99_lt, p99_lc = median(lt, "ttft_p99_err_ms"), median(lc, "ttft_p99_err_ms")
        # the client's core shared with a busy loop (a throttled pod): the own client times
        # each token at the kernel's receive time, reqwest when its task reads it
        hog = subprocess.Popen(pinned(0, ["sh", "-c", "while :; do :; done"]))
        try:
            shared = [load_test(sim, 512, 5) for _ in range(RUNS)]
            shared_hyper = [load_test(sim, 512, 5, extra=HYPER) for _ in range(RUNS)]
        finally:
            hog.kill()
            hog.wait()
    finally:
        sim.stop()
    note.append("TTFT p50 / p99 error at 512 streams with the client's core shared with a busy "
                f"loop: {fmt(median(shared, 'ttft_p50_err_ms'))} / "
                f"{fmt(median(shared, 'ttft_p99_err_ms'))} ms (kernel receive times), "
                f"{fmt(median(shared_hyper, 'ttft_p50_err_ms'))} / "
                f"{fmt(median(shared_hyper, 'ttft_p99_err_ms'))} ms on --http-client reqwest "
                "(times at the read)")
    row("TTFT p50 error vs the server's truth at 1 / 64 / 512 streams (ms)",
        " / ".join(fmt(e) for e in errs_lt), " / ".join(fmt(e) for e in errs_lc), "<= 2")
    row("TTFT p99 error at 512 streams (ms)", fmt(p99_lt), fmt(p99_lc), "<= 5")
    row("start-up to first request (ms; includes health, model check, preconnect)",
        fmt(statistics.median(startup)), "-", "<= 100")

    # the same 512 streams under tcpdump: the client's TTFT against the wire's
    if can_capture():
        sim = Sim(20, 5)
        try:
            wire = [wire_run(sim, 512, max(5, SECONDS // 2)) for _ in range(RUNS)]
        finally:
            sim.stop()
        row("TTFT p50 / p99 error at 512 streams vs the wire (tcpdump on lo; ms)",
            f"{fmt(median(wire, 'p50_err_ms'))} / {fmt(median(wire, 'p99_err_ms'))}", "-",
            "<= 2 / <= 5")
        note.append("the wire's TTFT p99 at 512 streams sits "
                    f"{fmt(median(wire, 'server_tail_ms'))} ms above the sim's own mean: the "
                    "server's tail (reading the request, writing the token), in the p99 error "
                    "against the sim's truth but not the client's; "
                    f"{sum(w['requests'] for w in wire)} requests on the wire of "
                    f"{sum(w['ok'] for w in wire)} measured, "
                    f"{sum(w['dropped'] for w in wire)} packets dropped by the capture")
    else:
        note.append("TTFT vs the wire: skipped (needs tcpdump and root)")

    print("figure | load-test | locust | goal")
    for r in rows:
        print(" | ".join(r))
    cpu = ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"machine: {os.cpu_count()} cores ({cpu}), pinned: {'yes' if PIN else 'no'}, "
          f"runs: {RUNS} (median), {SECONDS} s each, {TOKENS}-token streams, "
          f"date: {time.strftime('%Y-%m-%d')}")
    for n in note:
        print(f"note: {n}")


if __name__ == "__main__":
    main()
