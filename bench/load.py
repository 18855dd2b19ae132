"""Load benchmark (issue 8): WeChat's servers sending citizens' messages to a real `govchat run`.

    .venv/bin/python bench/load.py [--rate 20 --duration 300] [--database-url URL] [--profile]
    .venv/bin/python bench/load.py --find-knee 5,10,20,30,40 [--step-duration 30]

Starts the service as the end-to-end tests do (tests/e2e.py: server + supervised Rasa on
loopback, the default account in safe mode, WECHAT_API_BASE on the fake WeChat API of
tests/channels/fake_wechat_api.py) on a fresh SQLite file, or on --database-url, which is
EMPTIED first (use a private database, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/load_bench).

Arrivals are an open-loop Poisson process at --rate messages/s. Each message comes from a
simulated citizen (its own openid) in one of four scenarios: a real citizen's text from the
Teddy Cup 2020 messages (read at run time from ../shared/data), consultations from the demo
Q&A base, a complaint intake (the complaint, then the form's answers and 是), or 查进度. A
citizen sends its next message only once the previous one was answered (passively, or through
the customer-service API after `success`). Each request is signed and encrypted with wechatpy;
one not answered within 5 s is sent again with the same MsgId, three tries in all, as WeChat does.

Prints one table row per rate: throughput, end-to-end latency of the HTTP answer (first try to
the answer WeChat accepted), passive vs `success` + customer-service delivery, errors, and the
database audit of bench/load_audit.py (lost, duplicated, late replies not delivered).
--profile samples the server and Rasa with py-spy during the run and prints where the time goes.
--kill-rasa-at S kills Rasa (SIGKILL) S seconds into the run, as tests/faults does under light
traffic: the table then shows what a crash under load costs, and how long Rasa took to come back.
Results are recorded in docs/performance.md.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp                                                        # noqa: E402
import xmltodict                                                      # noqa: E402

from bench.load_audit import PASSIVE, SUCCESS, Audit, audit           # noqa: E402
from knowledge_base.api import DEMO_QA, read_table                    # noqa: E402
from tests.channels import fake_wechat_api                            # noqa: E402
from tests.channels.test_wechat import GH, WeChat                     # noqa: E402
from tests.conftest import reset_schema                               # noqa: E402
from tests.e2e import start_service, stop_service, wait_healthy       # noqa: E402

# The shared data beside the checkout (../shared), or where this machine kind keeps it.
CITIZEN_TEXTS = next((p for p in (ROOT.parent / "shared", Path("/work/shared")) if p.exists()),
                     ROOT.parent / "shared") / "data" / "teddycup2020" / "unlabelled_messages.csv"
APP_ID, SECRET, TOKEN = "wxload000000000001", "loadSecret", "loadToken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
TRY_TIMEOUT, TRIES = 5.0, 3         # WeChat waits 5 s, then tries again: three tries in all
DELIVERY_WAIT = 60.0                # how long a citizen waits for a late reply before giving up
SCENARIOS = {"citizen_text": 0.35, "consultation": 0.30, "complaint": 0.15, "status": 0.20}
PLACES = ["南湖区人民路88号", "秀洲区新城街道洪兴路12号", "嘉善县魏塘街道中山路5号", "海宁市硖石街道西山路20号"]
PROBLEMS = ["楼下饭店油烟太大", "小区门口路灯坏了很久", "工地夜里施工噪音扰民", "河边有人偷倒建筑垃圾",
            "商铺占道经营堵住人行道"]
TIMES = ["每天晚上六点到十点", "昨晚十点以后", "最近一个星期"]


@dataclass
class Sent:
    """One message as WeChat tracks it."""
    msg_id: str
    openid: str
    scenario: str
    started: float
    tries: int = 0
    answer: str | None = None        # PASSIVE, SUCCESS, or None (no answer WeChat accepted)
    latency: float | None = None     # first try to the accepted answer
    error: str | None = None


@dataclass
class Citizen:
    openid: str
    scenario: str
    steps: list[str]
    done: int = 0


class Texts:
    """What citizens write, drawn at random (seeded)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.questions = []
        for row in read_table(DEMO_QA):
            self.questions.append(row.question)
            self.questions += list(row.similar_questions)
        if not CITIZEN_TEXTS.exists():     # a checkout without the shared data: say so, go on
            print(f"note: {CITIZEN_TEXTS} is not here; 'citizen_text' uses the demo questions",
                  file=sys.stderr)
            self.real = list(self.questions)
            return
        with open(CITIZEN_TEXTS, newline="", encoding="utf-8") as f:
            # A short message as written; a long one by its subject (the server takes 500 chars).
            self.real = [(r["留言详情"].strip() if len(r["留言详情"].strip()) <= 300 else r["留言主题"].strip())
                         for r in csv.DictReader(f)]
        self.real = [t for t in self.real if t]

    def citizen(self) -> Citizen:
        scenario = self.rng.choices(list(SCENARIOS), weights=list(SCENARIOS.values()))[0]
        pick = self.rng.choice
        steps = {
            "citizen_text": lambda: [pick(self.real)],
            "consultation": lambda: self.rng.sample(self.questions, self.rng.randint(1, 2)),
            "complaint": lambda: ["我要投诉" + pick(PROBLEMS), pick(PLACES), pick(TIMES),
                                  pick(["不留", "13812345678"]), "是"],
            "status": lambda: ["查进度"],
        }[scenario]()
        return Citizen("oLOAD" + secrets.token_hex(8), scenario, steps)


class Generator:
    """WeChat's side: Poisson arrivals, citizens in turn, retries after 5 s."""

    def __init__(self, url: str, fake: fake_wechat_api.FakeWechatApi, texts: Texts,
                 rng: random.Random) -> None:
        self.url, self.fake, self.texts, self.rng = url, fake, texts, rng
        self.ready: list[Citizen] = []
        self.sent: list[Sent] = []

    async def run(self, rate: float, duration: float) -> list[Sent]:
        """Send for `duration` seconds, then wait for every message to settle."""
        self.sent, self.ready = [], []
        timeout = aiohttp.ClientTimeout(total=TRY_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout,
                                         connector=aiohttp.TCPConnector(limit=0)) as http:
            wx = WeChat(http, self.url + "/wechat", TOKEN, APP_ID, AES_KEY)
            loop = asyncio.get_running_loop()
            start = loop.time()
            at, tasks = start, []
            while True:
                at += self.rng.expovariate(rate)
                if at - start >= duration:
                    break
                await asyncio.sleep(max(0.0, at - loop.time()))
                citizen = self.ready.pop(0) if self.ready else self.texts.citizen()
                tasks.append(asyncio.ensure_future(self._say(wx, citizen, start)))
            await asyncio.gather(*tasks)
        return self.sent

    async def _say(self, wx: WeChat, citizen: Citizen, t0: float) -> None:
        loop = asyncio.get_running_loop()
        text = citizen.steps[citizen.done]
        citizen.done += 1
        sent = Sent(str(secrets.randbelow(9 * 10**18) + 10**18), citizen.openid, citizen.scenario,
                    loop.time() - t0)
        self.sent.append(sent)
        fields = {"ToUserName": GH, "FromUserName": citizen.openid,
                  "CreateTime": str(int(time.time())), "MsgType": "text", "Content": text,
                  "MsgId": sent.msg_id}
        before = sum(1 for m in self.fake.sent if m["touser"] == citizen.openid)
        first = loop.time()
        while sent.tries < TRIES and sent.answer is None:
            sent.tries += 1
            try:
                resp = await wx.post(fields, encrypt=True)
                body = await resp.text()
            except asyncio.TimeoutError:
                continue                    # WeChat drops the connection and tries again
            except aiohttp.ClientError as exc:
                sent.error = type(exc).__name__
                break
            if resp.status != 200:
                sent.error = f"HTTP {resp.status}"
                break
            sent.latency = loop.time() - first
            if body == "success":
                sent.answer = SUCCESS
            else:
                try:
                    env = xmltodict.parse(body)["xml"]
                    wx.crypto.decrypt_message(body, env["MsgSignature"], env["TimeStamp"], env["Nonce"])
                    sent.answer = PASSIVE
                except Exception as exc:    # WeChat would drop a reply it cannot decrypt
                    sent.error = f"bad reply: {type(exc).__name__}"
        if sent.answer == SUCCESS:
            # The answer follows through the customer-service API; the citizen reads it first.
            deadline = loop.time() + DELIVERY_WAIT
            while loop.time() < deadline and sum(
                    1 for m in self.fake.sent if m["touser"] == citizen.openid) <= before:
                await asyncio.sleep(0.2)
        if sent.answer is not None and citizen.done < len(citizen.steps):
            self.ready.append(citizen)


@dataclass
class Row:
    rate: float
    duration: float
    sent: list[Sent]
    elapsed: float
    audit: Audit
    mix: Counter = field(default_factory=Counter)

    def cells(self) -> list[str]:
        answered = [s for s in self.sent if s.answer is not None]
        lat = sorted(s.latency for s in answered)
        n = len(self.sent)

        def pct(p: float) -> str:
            return f"{lat[min(len(lat) - 1, int(p * len(lat)))]:.2f}" if lat else "-"
        passive = sum(s.answer == PASSIVE for s in self.sent)
        success = sum(s.answer == SUCCESS for s in self.sent)
        a = self.audit
        return [f"{self.rate:g}", f"{self.duration:g}", str(n), f"{len(answered) / self.elapsed:.1f}",
                pct(0.50), pct(0.95), pct(0.99), f"{lat[-1]:.2f}" if lat else "-",
                f"{100 * passive / max(n, 1):.1f}%", f"{success} / {a.deliveries_sent}",
                str(sum(s.tries - 1 for s in self.sent)), str(sum(1 for s in self.sent if s.error)),
                str(sum(1 for s in self.sent if s.answer is None and not s.error)),
                str(len(a.lost)), str(len(a.duplicated)), str(len(a.late_uncovered)),
                str(a.handed_off), str(a.cases)]


HEADER = ["rate/s", "secs", "messages", "answered/s", "p50 s", "p95 s", "p99 s", "max s",
          "passive", "success / CS sent", "retries", "errors", "unanswered", "lost", "duplicated",
          "late uncovered", "handed off", "cases"]


def table(rows: list[Row]) -> str:
    cells = [HEADER] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    lines = ["| " + " | ".join(c[i].ljust(widths[i]) for i in range(len(HEADER))) + " |" for c in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


async def measure(url: str, fake: fake_wechat_api.FakeWechatApi, database_url: str,
                  rate: float, duration: float, seed: int = 8) -> Row:
    """One run at `rate`, then the audit (the core the smoke test runs too)."""
    generator = Generator(url, fake, Texts(random.Random(seed)), random.Random(seed + 1))
    sent = await generator.run(rate, duration)
    elapsed = max(duration, max((s.started + (s.latency or 0) for s in sent), default=0))
    await asyncio.sleep(1)          # let the last stored replies' deliveries settle
    answers = {s.msg_id: (s.openid, s.answer) for s in sent}
    found = await audit(database_url, answers, fake.sent)
    return Row(rate, duration, sent, elapsed, found, Counter(s.scenario for s in sent))


async def kill_rasa_after(url: str, seconds: float) -> str:
    """SIGKILL the supervised Rasa `seconds` from now; return how long until it served again."""
    async with aiohttp.ClientSession() as http:
        async def rasa() -> dict:
            async with http.get(url + "/healthz") as resp:
                return (await resp.json())["rasa_process"]

        await asyncio.sleep(seconds)
        before = await rasa()
        os.kill(before["pid"], signal.SIGKILL)
        killed = time.monotonic()
        while time.monotonic() - killed < 600:
            await asyncio.sleep(1)
            now = await rasa()
            if now.get("state") == "running" and now.get("pid") not in (None, before["pid"]):
                return (f"Rasa killed at {seconds:g} s, "
                        f"serving again after {time.monotonic() - killed:.0f} s")
    return f"Rasa killed at {seconds:g} s, not serving again after 600 s"


@contextlib.asynccontextmanager
async def service(database_url: str, var_dir: Path, extra_env: dict | None = None):
    """`govchat run` on an emptied database, its WeChat API the loopback fake: (service, fake)."""
    await reset_schema(database_url)
    async with fake_wechat_api.serve({APP_ID: SECRET}) as (fake, api_base):
        svc = start_service(database_url, var_dir, extra_env={
            "WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": SECRET, "WECHAT_TOKEN": TOKEN,
            "WECHAT_ENCODING_AES_KEY": AES_KEY, "WECHAT_MODE": "safe",
            "WECHAT_API_BASE": api_base, **(extra_env or {})})
        try:
            await wait_healthy(svc)
            yield svc, fake
        finally:
            stop_service(svc)


PY_SPY = Path(sys.executable).parent / "py-spy"


def start_profiler(pid: int, out: Path, seconds: float) -> subprocess.Popen:
    """py-spy, sampling the server and its children (Rasa) without stopping them."""
    return subprocess.Popen(
        [str(PY_SPY), "record", "--pid", str(pid), "--subprocesses",
         "--nonblocking", "--rate", "50", "--duration", str(int(seconds)), "--format", "raw",
         "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


PROCESS = re.compile(r'process \d+:"')
# Whose functions to list inclusively, per process: govchat's own, and Rasa's message handling
# (with the JSON-schema check of every action server response, its largest single cost).
LISTED = {"govchat run": re.compile(r"\((admin|bot|casework|channels|knowledge_base|server)/"),
          "Rasa": re.compile(r"^(?!main |run |serve_application )\S+ \((rasa/core|jsonschema/validators)")}


def profile_summary(raw: Path, top: int = 12) -> str:
    """Per process (the server, Rasa): its share of samples, the functions running (leaf
    frames), and its own functions (LISTED) by inclusive share."""
    per_process: dict[str, list[Counter]] = {}
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames, n = stack.split(";"), int(count)
        total += n
        name = [f for f in frames if PROCESS.match(f)][-1]
        if "rasa run" in name or "rasa_launch.py" in name:
            name = "Rasa"
        else:
            name = "govchat run" if "govchat run" in name else name[:60]
        samples, leaves, own = per_process.setdefault(name, [Counter(), Counter(), Counter()])
        samples["all"] += n
        leaves[frames[-1]] += n
        listed = LISTED.get(name)
        for frame in {f for f in frames if listed and listed.search(f)}:
            own[frame] += n
    if not total:
        return "(no samples)"
    lines = [f"{total} samples (py-spy, 50/s, every thread of both processes)"]
    for name, (samples, leaves, own) in sorted(per_process.items(), key=lambda p: -p[1][0]["all"]):
        lines.append(f"{name}: {100 * samples['all'] / total:.1f}% of samples")
        lines += ["  running (leaf frames):"] + [
            f"    {100 * n / total:5.1f}%  {f[:140]}" for f, n in leaves.most_common(top)]
        if own:
            lines += ["  its code, inclusive:"] + [
                f"    {100 * n / total:5.1f}%  {f[:140]}" for f, n in own.most_common(top)]
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--duration", type=float, default=300)
    parser.add_argument("--find-knee", help="comma-separated rates, each run for --step-duration")
    parser.add_argument("--step-duration", type=float, default=30)
    parser.add_argument("--database-url", help="emptied first; default: a fresh SQLite file")
    parser.add_argument("--profile", action="store_true", help="py-spy the server and Rasa")
    parser.add_argument("--kill-rasa-at", type=float,
                        help="SIGKILL Rasa this many seconds into the (first) measured run")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--warm-up", type=float, default=10,
                        help="seconds at 2/s first, not reported (Rasa's first answers are slow)")
    args = parser.parse_args()
    if args.profile and not PY_SPY.exists():
        parser.error(f"--profile needs py-spy at {PY_SPY} (pip install py-spy), not installed here")

    tmp = Path(tempfile.mkdtemp(prefix="govchat-load-"))
    url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'load.db'}"
    steps = ([(float(r), args.step_duration) for r in args.find_knee.split(",")]
             if args.find_knee else [(args.rate, args.duration)])
    print(f"database {url.split('@')[-1]}, var {tmp}", flush=True)
    async with service(url, tmp / "var") as (svc, fake):
        if args.warm_up:
            texts = Texts(random.Random(args.seed - 1))
            await Generator(svc.url, fake, texts, random.Random(args.seed)).run(2, args.warm_up)
        profiler = None
        if args.profile:
            profiler = start_profiler(svc.proc.pid, tmp / "profile.txt",
                                      sum(d for _, d in steps))
        rows, killer = [], None
        if args.kill_rasa_at is not None:
            killer = asyncio.create_task(kill_rasa_after(svc.url, args.kill_rasa_at))
        for rate, duration in steps:
            row = await measure(svc.url, fake, url, rate, duration, args.seed)
            rows.append(row)
            print(table([row]).splitlines()[-1], flush=True)
            for problem in (row.audit.lost + row.audit.duplicated + row.audit.late_uncovered)[:10]:
                print("   ", problem)
        if killer is not None:
            print(await killer, flush=True)
        if profiler is not None:
            _, err = profiler.communicate()
            if profiler.returncode:
                print(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
    print()
    print(table(rows))
    print("messages by scenario:", dict(sum((r.mix for r in rows), Counter())))
    if args.find_knee:
        knee = next((r for r in rows if r.cells()[6] == "-" or float(r.cells()[6]) > 1.0
                     or any(r.cells()[i] != "0" for i in (11, 12, 13, 14, 15))), None)
        print("knee:", f"{knee.rate:g}/s (p99 over 1 s or errors)" if knee else "not reached")
    if args.profile and (tmp / "profile.txt").exists():
        print()
        print(profile_summary(tmp / "profile.txt"))


if __name__ == "__main__":
    asyncio.run(main())
