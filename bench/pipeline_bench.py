"""End-to-end throughput and latency of `pharmamod run` (local adapter -> engine -> SQLite store).

Targets: at least 2,000 messages/s with 10 % of them held, and a message stored (its case, PV
case and outbox rows committed) within 20 ms of arriving, p99.

Builds a 20,000-message JSONL community file: 90 % ordinary chat (the labelled corpus's lines with
no category, plus chatter) and 10 % posts the default rules hold (corpus posts naming medicines or
giving advice, adverse-event posts), each made unique by a trailing chatter fragment and number.
The candidate lines are screened once so that the mix holds what it claims; the held share the
run actually measured is printed. Then, in one process:

(a) `Runner.run()` on a temp TOML config (fresh store, PV and medinfo routes to JSONL drops, the
    local adapter's actions file): start-up (`Runner(...)`: rules, store, adapters) is timed apart;
    throughput is messages / time from `run()` until the last message is stored, and the whole
    `run()` (which then drains the outbox) is shown too;
(b) latency from `sink()` entry to stored, three ways: exactly, by wrapping the runner's `sink`;
    as upper bounds from the runner's own Prometheus histogram (`pharmamod_store_seconds`); and
    `Pipeline.process` called on batches of one message into another fresh store;
(c) the baseline: `bot.engine.screen` alone on the same messages (no store), and the ratio.

    python bench/pipeline_bench.py [--messages 20000] [--held 0.10] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from chatter import CHATTER  # noqa: E402 - bench/ is the script's folder

ROOT = Path(__file__).resolve().parent.parent
DRUGS = ["ozempic", "metformin", "sertraline", "ibuprofen", "lisinopril", "atorvastatin", "mounjaro"]
HELD_TEMPLATES = [
    "since I started {d} I throw up every morning", "been on {d} for two weeks and my hair is falling out",
    "my mum started {d} and now she has awful diarrhoea", "just take 400mg of {d} three times a day",
    "you should double your {d}, it works better", "anyone else on {d}? how much do you take?",
]


def candidate_pools(rs) -> tuple[list[str], list[str]]:
    """Held and benign lines, each checked with the default rules so the mix is what it says."""
    from bot.engine import screen
    from bot.models import Message

    held, benign = [t.format(d=d) for t in HELD_TEMPLATES for d in DRUGS], list(CHATTER)
    for f in sorted((ROOT / "tests/corpus").glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                (held if rec["categories"] else benign).append(rec["text"])
    return ([t for t in held if screen(Message(text=t), rs).held],
            [t for t in benign if not screen(Message(text=t), rs).held])


def write_community(path: Path, n: int, held_share: float, seed: int, rs) -> None:
    rng = random.Random(seed)
    held, benign = candidate_pools(rs)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            base = rng.choice(held) if rng.random() < held_share else rng.choice(benign)
            text = f"{base} {rng.choice(CHATTER).split(',')[0]} #{i}"
            f.write(json.dumps({"id": f"b{i:06d}", "author": f"u{rng.randrange(500)}", "channel": "general",
                                "text": text}, ensure_ascii=False) + "\n")


def write_config(folder: Path, source: Path) -> Path:
    cfg = folder / "config.toml"
    cfg.write_text(f"""
[store]
path = "store.db"
[rules]
reload_seconds = 0
[service]
metrics_port = 0
[community.bench]
country = "NL"
pv_routes = ["pv-jsonl"]
medinfo_routes = ["medinfo-jsonl"]
[routes.pv-jsonl]
type = "jsonl"
path = "out/pv.jsonl"
[routes.medinfo-jsonl]
type = "jsonl"
path = "out/medinfo.jsonl"
[adapters.local]
path = {json.dumps(str(source))}
community = "bench"
actions = "out/actions.jsonl"
""", encoding="utf-8")
    return cfg


def pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def histogram_bounds(hist, qs=(0.5, 0.99)) -> dict[float, str]:
    """Upper bounds of the quantiles from a prometheus_client Histogram's cumulative buckets."""
    buckets = [(float(s.labels["le"]), s.value) for m in hist.collect() for s in m.samples
               if s.name.endswith("_bucket")]
    total = buckets[-1][1]
    out = {}
    for q in qs:
        le = next(b for b, c in buckets if c >= q * total)
        out[q] = "> 1000 ms" if le == float("inf") else f"<= {le * 1e3:g} ms"
    return out


async def timed_run(runner) -> tuple[float, float, list[float], list[int]]:
    """Run; return (seconds until the last message was stored, seconds of the whole run, latencies,
    sizes of the batches the processor stored)."""
    lat: list[float] = []
    last = [0.0]
    inner = runner.sink
    batches: list[int] = []
    process = runner.pipeline.process

    def counted(batch):
        batches.append(len(batch))
        return process(batch)

    runner.pipeline.process = counted

    async def sink(msg):  # adapters call `core.submit` (the runner) for every message
        t0 = time.perf_counter()
        await inner(msg)
        t1 = time.perf_counter()
        lat.append(t1 - t0)
        last[0] = t1

    runner.sink = runner.submit = sink
    t0 = time.perf_counter()
    await runner.run()
    return last[0] - t0, time.perf_counter() - t0, lat, batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--held", type=float, default=0.10, help="share of messages the default rules hold")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from bot.config import load_config
    from bot.engine import screen
    from bot.ruleset import load_ruleset
    from bot.runner import Pipeline, Runner
    from bot.scan import read_jsonl
    from bot.store import now, open_store

    with tempfile.TemporaryDirectory(prefix="pharmamod-bench-") as tmp:
        tmp = Path(tmp)
        source = tmp / "community.jsonl"
        write_community(source, args.messages, args.held, args.seed, load_ruleset())
        config = load_config(write_config(tmp, source))

        # (a) the service, in-process: start-up apart, then run() until the file is screened and delivered
        t0 = time.perf_counter()
        runner = Runner(config)
        startup = time.perf_counter() - t0
        to_stored, whole, lat, batches = asyncio.run(timed_run(runner))
        stats, hist = runner.stats, runner.metrics.latency
        stored = stats.new + stats.edited + stats.duplicate
        with sqlite3.connect(tmp / "store.db") as db:
            outbox = dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
        bounds = histogram_bounds(hist)
        lat.sort()
        rate = stored / to_stored

        # (b) Pipeline.process on batches of one, into a fresh store: the storing cost alone
        with open(source, "rb") as f:
            messages = [r.message.model_copy(update={"community": "bench"}) for r in read_jsonl(f)]
        db = open_store(tmp / "batch1.db")
        pipe = Pipeline(config, db, runner.rulesets)
        one: list[float] = []
        t0 = time.perf_counter()
        for m in messages:
            s = time.perf_counter()
            pipe.process([(m, now())])
            one.append(time.perf_counter() - s)
        pipe_rate = len(messages) / (time.perf_counter() - t0)
        db.close()
        one.sort()

        # (c) baseline: the engine alone on the same messages, no store
        rs = runner.rulesets["default"]
        for m in messages[:500]:
            screen(m, rs)
        t0 = time.perf_counter()
        held = sum(screen(m, rs).held for m in messages)
        engine_rate = len(messages) / (time.perf_counter() - t0)

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"pharmamod run, local adapter -> SQLite, {stored:,} messages ({stats.held / stored:.1%} held, "
          f"{stats.pv_cases:,} PV cases), 1 process:")
    print(f"  start-up        {startup:12.2f} s   (Runner(): rules, store, adapters; not in the figures below)")
    print(f"  throughput      {rate:12,.0f} messages/s   ({to_stored:.2f} s until the last message was stored; "
          f"target >= 2,000)")
    print(f"  whole run()     {whole:12.2f} s   (then draining the outbox: {stats.delivered:,} deliveries, "
          f"outbox {outbox})")
    print(f"  batches         {len(batches):12,d}     stored by the processor, mean {statistics.mean(batches):.1f} "
          f"messages, max {max(batches)} (one transaction each)")
    print(f"  latency p50     {pct(lat, 0.50) * 1e3:12.3f} ms   sink() entry -> stored (histogram: {bounds[0.5]})")
    print(f"  latency p99     {pct(lat, 0.99) * 1e3:12.3f} ms   (histogram: {bounds[0.99]}; target < 20 ms)")
    print(f"  latency max     {lat[-1] * 1e3:12.3f} ms")
    print("Pipeline.process, batches of 1 message (screen + one transaction), fresh store:")
    print(f"  throughput      {pipe_rate:12,.0f} messages/s")
    print(f"  latency p50     {pct(one, 0.50) * 1e3:12.3f} ms")
    print(f"  latency p99     {pct(one, 0.99) * 1e3:12.3f} ms")
    print(f"baseline: bot.engine.screen alone, same messages ({held / len(messages):.1%} held), no store:")
    print(f"  throughput      {engine_rate:12,.0f} messages/s   run/engine = {rate / engine_rate:5.2f}x, "
          f"process(1)/engine = {pipe_rate / engine_rate:5.2f}x")
    print(f"  peak RSS        {rss:12.0f} MB")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU(s), {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}; a shared VM is noisy, run it twice")


if __name__ == "__main__":
    main()
