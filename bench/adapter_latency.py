"""Exposure window of a forbidden message, per platform: from the platform delivering it to the bot
until pharmamod's hold call (delete, remove) reaches the platform.

Target: p99 < 250 ms at 50 messages/s per platform, on this machine.

For each platform in turn (discord, telegram, reddit): its fake server from tests/fakes (real HTTP
and WebSocket on 127.0.0.1, spoken to by the real client library), a real `bot.runner.Runner` with
that one adapter (fresh store in a temp dir, one community, default rules, no review room), and a
feeder that posts N messages at R/s (default 1,000 at 50/s: 10 % that the default rules hold,
"anyone tried ozempic for this?"-like questions made unique, the rest `CHATTER`). One perf_counter
clock, since the fake, the client library, the adapter and the Runner share one event loop (the
fake's own work is in the figures; a real platform's network is not). For each held message:

- delivered: Discord, the gateway dispatch of its MESSAGE_CREATE; Telegram, the getUpdates
  response that first contains it; Reddit, the comment-listing response that first contains it;
- posted: when the feeder put it on the platform. Discord pushes and Telegram long-polls, so
  posted ~ delivered there; Reddit is polled, so posted -> hold includes the wait for the next poll
  (`poll_seconds`, printed) and is the exposure window a reader of the subreddit sees;
- hold: when the fake received DELETE .../messages/<id>, deleteMessage, or POST /api/remove.

Printed per platform: p50/p99/max of delivered -> hold and posted -> hold, the share of held
messages whose hold arrived (within `--drain` s of the last message), and holds of messages the
engine does not hold (should be 0). Baseline in the same run: `Pipeline.process` on batches of one
message (screen + one SQLite transaction, a fresh store) and `bot.engine.screen` alone, with the
ratio of each platform's delivered -> hold p50 to them.

    python bench/adapter_latency.py [--rate 50] [--seconds 20] [--held 0.10] [--reddit-poll 1]
                                    [--platforms discord,telegram,reddit] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chatter import CHATTER  # noqa: E402 - bench/ is the script's folder

ROOT = Path(__file__).resolve().parent.parent
COMMUNITY = "bench"
DRUGS = ["ozempic", "metformin", "wegovy", "sertraline", "mounjaro", "ibuprofen", "insulin glargine"]
HELD_TEMPLATES = ["anyone tried {d} for this?", "has anyone tried {d} for this?", "anyone else on {d}?",
                  "does {d} work for anyone here?", "thinking about asking my doctor for {d}, thoughts?"]
TARGET_P99 = 0.250
clock = time.perf_counter


def pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def message_mix(n: int, held_share: float, seed: int, rs) -> list[tuple[str, bool]]:
    """n unique texts with whether the default rules hold each (screened here, so the mix is what it says)."""
    from bot.engine import screen
    from bot.models import Message

    rng = random.Random(seed)
    held_pool = [t.format(d=d) for t in HELD_TEMPLATES for d in DRUGS]
    out = []
    for i in range(n):
        base = rng.choice(held_pool) if rng.random() < held_share else rng.choice(CHATTER)
        text = f"{base} ({rng.choice(CHATTER).split(',')[0]} #{i})"
        out.append((text, screen(Message(text=text), rs).held))
    return out


class Trace:
    """What happened to each message, keyed by its platform id: posted, delivered, hold times."""

    def __init__(self) -> None:
        self.posted: dict[str, float] = {}
        self.delivered: dict[str, float] = {}
        self.hold: dict[str, float] = {}
        self.expect_held: set[str] = set()
        self.started = asyncio.Event()  # the adapter is reading the platform

    def held_now(self, key: str) -> None:
        self.hold.setdefault(key, clock())


def base_config(tmp: Path, adapters: dict[str, Any]) -> Any:
    from bot.config import Config

    return Config.model_validate({
        "store": {"path": str(tmp / "store.db")}, "rules": {"reload_seconds": 0}, "service": {"metrics_port": 0},
        "community": {COMMUNITY: {"country": "NL"}}, "adapters": adapters, "base": tmp})


# -- one platform each: start the fake, configure the adapter, post, observe -------------------------


class DiscordSide:
    name, setting = "discord", "gateway push"
    TOKEN_ENV, TOKEN = "PHARMAMOD_BENCH_DISCORD_TOKEN", "MTAwMA.bench-discord-token.x7Kq"

    async def start(self, trace: Trace) -> dict[str, Any]:
        from discord.gateway import DiscordWebSocket
        from discord.http import Route
        from tests.fakes.discord import GENERAL, GUILD, FakeDiscord

        self.saved = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY  # process-wide; put back in stop()
        os.environ[self.TOKEN_ENV] = self.TOKEN
        self.fake = fake = await FakeDiscord(self.TOKEN).start()
        self.channel = GENERAL
        record = fake.rec.record

        def timed(method, path, body=None):
            if method == "DELETE" and f"/channels/{GENERAL}/messages/" in path:
                trace.held_now(path.rsplit("/", 1)[1])
            record(method, path, body)

        fake.rec.record = timed
        return {"discord": {"token_env": self.TOKEN_ENV, "api_base": fake.api_base, "gateway_url": fake.gateway_url,
                            "guild_ready_timeout": 0.05, "communities": {COMMUNITY: {"guild": GUILD,
                                                                                     "channels": [GENERAL]}}}}

    async def ready(self, runner, trace: Trace) -> None:
        await runner.adapters["discord"].ready.wait()

    async def post(self, text: str, i: int, trace: Trace) -> str:
        from tests.fakes.discord import ALICE

        t = clock()
        mid = str(await self.fake.say(text, author=ALICE, channel=self.channel))  # returns once dispatched
        trace.delivered[mid] = clock()
        trace.posted[mid] = t
        return mid

    async def stop(self) -> None:
        from discord.gateway import DiscordWebSocket
        from discord.http import Route

        await self.fake.stop()
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = self.saved


class TelegramSide:
    name = "telegram"
    GROUP, TOKEN_ENV = -1001000000001, "PHARMAMOD_BENCH_TELEGRAM_TOKEN"

    def __init__(self, poll_timeout: float) -> None:
        self.poll_timeout = poll_timeout
        self.setting = f"long poll, timeout {poll_timeout:g} s"

    async def start(self, trace: Trace) -> dict[str, Any]:
        from tests.fakes.telegram import FakeTelegram

        self.fake = fake = await FakeTelegram().start()
        fake.add_group(self.GROUP, "Bench group", username="bench_group")
        os.environ[self.TOKEN_ENV] = fake.token
        record, get_updates = fake.rec.record, fake.m_getUpdates

        def timed(method, path, body=None):
            if method == "deleteMessage":
                trace.held_now(f"{body['chat_id']}:{body['message_id']}")
            record(method, path, body)

        async def timed_get_updates(p, request):
            trace.started.set()  # polling: the adapter is past its start-up checks
            resp = await get_updates(p, request)
            t = clock()  # the body is built; `fake.updates` is the list it was built from
            for u in fake.updates:
                m = u.get("message")
                if m:
                    trace.delivered.setdefault(f"{m['chat']['id']}:{m['message_id']}", t)
            return resp

        fake.rec.record = timed
        fake.m_getUpdates = timed_get_updates
        return {"telegram": {"token_env": self.TOKEN_ENV, "api_url": fake.api_url,
                             "communities": {COMMUNITY: self.GROUP}, "poll_timeout": self.poll_timeout}}

    async def ready(self, runner, trace: Trace) -> None:
        await trace.started.wait()

    async def post(self, text: str, i: int, trace: Trace) -> str:
        from tests.fakes.telegram import user

        t = clock()
        m = self.fake.post(self.GROUP, user(500 + i % 300, f"member{i % 300}"), text)
        key = f"{self.GROUP}:{m['message_id']}"
        trace.posted[key] = t
        return key

    async def stop(self) -> None:
        await self.fake.stop()


class RedditSide:
    name = "reddit"
    SUB = "bench_sub"
    SECRETS = {"BENCH_REDDIT_CLIENT_ID": "cid", "BENCH_REDDIT_CLIENT_SECRET": "csecret",
               "BENCH_REDDIT_USERNAME": "pharmamod-bot", "BENCH_REDDIT_PASSWORD": "pw"}

    def __init__(self, poll: float) -> None:
        self.poll = poll
        self.setting = f"polled every {poll:g} s"

    async def start(self, trace: Trace) -> dict[str, Any]:
        from tests.fakes.reddit import FakeReddit

        os.environ.update(self.SECRETS)
        self.fake = fake = await FakeReddit(bot="pharmamod-bot", client_id="cid", client_secret="csecret",
                                            password="pw").start()
        self.thread = fake.add_submission(self.SUB, "Weekly chat thread")
        record, comments = fake.rec.record, fake.r_comments

        def timed(method, path, body=None):
            if method == "POST" and path == "/api/remove":
                trace.held_now(body["id"])
            record(method, path, body)

        async def timed_comments(subs, p):
            resp = await comments(subs, p)
            t = clock()
            for child in json.loads(resp.body)["data"]["children"]:
                trace.delivered.setdefault(child["data"]["name"], t)
            trace.started.set()
            return resp

        fake.rec.record = timed
        fake.r_comments = timed_comments
        return {"reddit": {"client_id_env": "BENCH_REDDIT_CLIENT_ID", "client_secret_env": "BENCH_REDDIT_CLIENT_SECRET",
                           "username_env": "BENCH_REDDIT_USERNAME", "password_env": "BENCH_REDDIT_PASSWORD",
                           "oauth_url": fake.url, "reddit_url": fake.url, "communities": {COMMUNITY: self.SUB},
                           "poll_seconds": self.poll}}

    async def ready(self, runner, trace: Trace) -> None:
        await trace.started.wait()

    async def post(self, text: str, i: int, trace: Trace) -> str:
        t = clock()
        name = self.fake.add_comment(self.SUB, text, author=f"member{i % 300}", parent=self.thread)
        trace.posted[name] = t
        return name

    async def stop(self) -> None:
        await self.fake.stop()


# -- the run ----------------------------------------------------------------------------------------------


async def measure(side, mix: list[tuple[str, bool]], rate: float, drain: float, tmp: Path) -> dict[str, Any]:
    from bot.runner import Runner

    trace = Trace()
    config = base_config(tmp, await side.start(trace))
    t0 = clock()
    runner = Runner(config)
    task = asyncio.create_task(runner.run())
    ready = asyncio.create_task(side.ready(runner, trace))
    done, _ = await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    assert ready in done, f"{side.name}: the adapter did not start within 30 s"
    startup = clock() - t0

    start = clock() + 0.1
    late = 0.0
    for i, (text, held) in enumerate(mix):
        wait = start + i / rate - clock()
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            late = max(late, -wait)
        key = await side.post(text, i, trace)
        if held:
            trace.expect_held.add(key)
    fed = clock() - start
    deadline = clock() + drain

    def stored() -> int:
        return runner.stats.new + runner.stats.edited + runner.stats.duplicate

    # Until every hold arrived and every message is stored (a stop with a message in flight would
    # leave it to the next start), or the drain time is up.
    while clock() < deadline and not (trace.expect_held <= trace.hold.keys() and stored() >= len(mix)):
        await asyncio.sleep(0.05)
    runner.stop()
    await asyncio.wait_for(task, 60)
    await side.stop()

    held = sorted(trace.expect_held)
    arrived = [k for k in held if k in trace.hold]
    from_delivery = sorted(trace.hold[k] - trace.delivered[k] for k in arrived if k in trace.delivered)
    from_post = sorted(trace.hold[k] - trace.posted[k] for k in arrived)
    return {"name": side.name, "setting": side.setting, "messages": len(mix), "fed": fed, "late": late,
            "startup": startup, "held": len(held), "arrived": len(arrived),
            "delivered": sum(1 for k in trace.posted if k in trace.delivered),
            "unexpected": len(trace.hold.keys() - trace.expect_held), "from_delivery": from_delivery,
            "from_post": from_post, "stats": runner.stats}


def baseline(mix: list[tuple[str, bool]], rs, tmp: Path) -> tuple[list[float], list[float]]:
    """`Pipeline.process` on batches of one (a fresh store) and `screen` alone, per message."""
    from bot.config import Config
    from bot.engine import screen
    from bot.models import Author, Message
    from bot.runner import Pipeline
    from bot.store import now, open_store

    config = Config.model_validate({"store": {"path": str(tmp / "baseline.db")},
                                    "community": {COMMUNITY: {"country": "NL"}}, "base": tmp})
    messages = [Message(platform="bench", community=COMMUNITY, channel="general", message_id=f"b{i}",
                        author=Author(id=f"u{i % 300}", display_name=f"member{i % 300}"), text=text)
                for i, (text, _) in enumerate(mix)]
    db = open_store(tmp / "baseline.db")
    pipe = Pipeline(config, db, {"default": rs})
    process = []
    for m in messages:
        s = clock()
        pipe.process([(m, now())])
        process.append(clock() - s)
    db.close()
    engine = []
    for m in messages:
        s = clock()
        screen(m, rs)
        engine.append(clock() - s)
    return sorted(process), sorted(engine)


def ms(x: float) -> str:
    return f"{x * 1e3:8.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=50.0, help="messages per second per platform")
    ap.add_argument("--seconds", type=float, default=20.0, help="how long each platform is fed")
    ap.add_argument("--held", type=float, default=0.10, help="share of messages the default rules hold")
    ap.add_argument("--reddit-poll", type=float, default=1.0,
                    help="the reddit adapter's poll_seconds (its default is 5; see the note printed)")
    ap.add_argument("--telegram-poll-timeout", type=float, default=30.0, help="getUpdates long-poll timeout")
    ap.add_argument("--drain", type=float, default=10.0, help="seconds to wait for the last holds")
    ap.add_argument("--platforms", default="discord,telegram,reddit")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    logging.basicConfig(level=logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import bot.runner
    from bot.ruleset import load_ruleset

    rs = load_ruleset()
    bot.runner.load_rulesets = lambda config: {"default": rs}  # compiled once, not per Runner
    n = int(args.rate * args.seconds)
    mix = message_mix(n, args.held, args.seed, rs)
    sides = {"discord": lambda: DiscordSide(), "telegram": lambda: TelegramSide(args.telegram_poll_timeout),
             "reddit": lambda: RedditSide(args.reddit_poll)}
    results = []
    with tempfile.TemporaryDirectory(prefix="pharmamod-latency-") as tmp:
        for name in args.platforms.split(","):
            folder = Path(tmp) / name
            folder.mkdir()
            results.append(asyncio.run(measure(sides[name](), mix, args.rate, args.drain + args.reddit_poll,
                                               folder)))
        process, engine = baseline(mix, rs, Path(tmp))

    print(f"Exposure window: platform delivers a message -> its hold call reaches the platform; {n:,} messages "
          f"per platform at {args.rate:g}/s ({sum(h for _, h in mix) / n:.1%} held by the default rules), "
          "one platform at a time, fake server and Runner in one process:")
    head = (f"  {'platform':9} {'input':22} {'held':>5} {'arrived':>8} {'deliv->hold p50':>16} {'p99':>8} "
            f"{'max':>8} {'posted->hold p50':>17} {'p99':>8} {'max':>8}  p99 < 250 ms (deliv, posted)")
    print(head)
    for r in results:
        d, p = r["from_delivery"] or [float("nan")], r["from_post"] or [float("nan")]
        complete = r["arrived"] == r["held"]
        ok = ", ".join("yes" if complete and x[0] == x[0] and pct(x, 0.99) < TARGET_P99 else "NO" for x in (d, p))
        print(f"  {r['name']:9} {r['setting']:22} {r['held']:5d} {r['arrived'] / max(r['held'], 1):8.1%} "
              f"{ms(pct(d, 0.5)):>13} ms {ms(pct(d, 0.99))} {ms(d[-1])} {ms(pct(p, 0.5)):>14} ms "
              f"{ms(pct(p, 0.99))} {ms(p[-1])}  {ok}")
    for r in results:
        s = r["stats"]
        print(f"  {r['name']:9} start-up {r['startup']:.2f} s; fed in {r['fed']:.2f} s (feeder at most "
              f"{r['late'] * 1e3:.0f} ms late); the bot stored {s.new:,} messages, held {s.held}; messages "
              f"delivered {r['delivered']:,}/{r['messages']:,}; holds of messages not meant to be held: "
              f"{r['unexpected']}" + (" (stored: + the thread's post)" if r["name"] == "reddit" else ""))
    if "reddit" in args.platforms:
        print(f"  reddit: poll_seconds = {args.reddit_poll:g} (the adapter's default is 5 s); posted->hold includes "
              "the wait for the next poll of the comment listing. A listing returns at most 100 items; after a "
              f"full page the adapter polls again at once, so at {args.rate:g}/s a backlog is read in pages.")
    print("baseline, same messages, in this process:")
    for label, xs in (("Pipeline.process, batches of 1 (screen + one transaction, fresh store)", process),
                      ("bot.engine.screen alone", engine)):
        print(f"  {label:70} p50 {pct(xs, 0.5) * 1e3:7.3f} ms, p99 {pct(xs, 0.99) * 1e3:7.3f} ms")
    for r in results:
        d = r["from_delivery"]
        if d:
            print(f"  {r['name']:9} deliv->hold p50 = {pct(d, 0.5) / pct(process, 0.5):7.1f}x Pipeline.process p50 "
                  f"= {pct(d, 0.5) / pct(engine, 0.5):8.0f}x screen p50")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU(s), {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}; a shared VM is noisy, run it twice")


if __name__ == "__main__":
    main()
