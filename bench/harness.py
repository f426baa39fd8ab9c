#!/usr/bin/env python3
"""Benchmark harness for the engine (db_bench style: one command, named scenarios).

Generates cart events once with gen_cart, runs the named scenarios, and prints
a Markdown table (events/s, MB/s, peak RSS, median wall time, ratio vs the
bare single-thread loop) under a header naming the machine and the command.

    python3 bench/harness.py [--build-dir build] [--events 2000000]
        [--users 100000] [--files 2] [--runs 3] [--scenarios a,b,...]
        [--tiny] [--json FILE] [--verify] [--strict]

Each child is timed with time.monotonic() and reaped with os.wait4(), whose
rusage gives that child's peak RSS. cart_join outputs are checked against
the bare loop's output as multisets of lines. Exit status is non-zero only
if the generator or the bare loop fails (or, with --strict, any scenario).
Python 3 standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

SCENARIOS = [
    "bare_loop",
    "cart_join_w1",
    "cart_join_w2",
    "cart_join_w1_recovery",
    "cart_join_w2_recovery",
    "cart_join_w1_s0",
    "cart_join_w2_s0",
    "cart_join_w1_s0_recovery",
    "cart_join_w2_s0_recovery",
    "cart_join_w2_s0p1_recovery",
    "cart_join_w2_s0p01_recovery",
    "exchange_w2",
    "stateful_w1",
    "resume_10k",
    "resume_1m",
    "many_files",
    "kafka_w1",
    "kafka_w2",
    "latency_file",
    "latency_kafka",
    "steady_w1",
    "steady_w2",
    "windows_tumbling",
    "windows_session",
]

# Event-time windows: cart_stats against the bare loop's --window mode on the
# same events with a "ts" (20 ms apart on average, up to 4 s out of order,
# every 997th event 2 minutes late); the window, and the --lateness in seconds.
WINDOW_TS_FLAGS = ["--ts-start", "1795255200000", "--ts-step-ms", "20", "--jitter-ms", "4000",
                   "--late-every", "997", "--late-ms", "120000"]
WINDOWS = {"windows_tumbling": "tumbling:60", "windows_session": "session:30"}
WINDOW_LATENESS = "5"

# Latency scenarios: events per second fed (and, for --tiny, a small rate), seconds of feeding.
LATENCY_RATES = {False: (10_000, 100_000, 1_000_000), True: (2_000,)}
LATENCY_SECONDS = {False: 3.0, True: 1.0}
# Partitions of the Kafka topics: librdkafka 2.0's mock cluster keeps only the
# last few MB of each partition, so the 120 MB input is spread over many.
KAFKA_PARTITIONS = 64

# many_files: a directory of many small files, read under a low descriptor limit:
# (files, events, users), normal and --tiny; and the `ulimit -n` it runs under.
MANY_FILES = {False: (10_000, 570_000, 50_000), True: (500, 20_000, 2_000)}
MANY_FILES_NOFILE = 256

# Epoch-per-item runs with -d read the first PREFIX_EVENTS events of the input
# (normal, --tiny): every epoch is a synced commit group, and 2M of them take minutes.
PREFIX_EVENTS = (100_000, 4_000)

# Steady state: a long run (events, users: normal, --tiny), each of these -s
# values with -d against the same run without -d, for -w 1 and -w 2, once.
STEADY_INPUT = {False: (20_000_000, 1_000_000), True: (200_000, 10_000)}
STEADY_INTERVALS = ("1", "0.1", "0.01")

# Keys held by the state dir a resume scenario restarts from: (normal, --tiny).
RESUME_KEYS = {"resume_10k": (10_000, 1_000), "resume_1m": (1_000_000, 10_000)}
RESUME_ITEMS = 1000  # items processed by the resumed run

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(message):
    print(f"[harness] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# Running and measuring one child process


class RunResult:
    """One child run: exit code (negative = killed by that signal), wall time,
    peak RSS, the last stderr line and the --stats JSON if one was written."""

    def __init__(self, argv):
        self.argv = argv
        self.exit_code = None
        self.wall = None
        self.maxrss_kib = 0
        self.cpu = None  # user + system seconds of the child
        self.last_stderr = ""
        self.timed_out = False
        self.stats = None

    @property
    def ok(self):
        return self.exit_code == 0 and not self.timed_out

    def failure(self):
        """The table's text for a failed run: failed (exit code, last stderr line)."""
        if self.timed_out:
            what = f"timeout after {self.wall:.0f} s"
        elif self.exit_code is not None and self.exit_code < 0:
            what = f"signal {-self.exit_code}"
        else:
            what = f"exit {self.exit_code}"
        detail = self.last_stderr.replace("|", "\\|")
        if len(detail) > 120:
            detail = detail[:117] + "..."
        return f"failed ({what}, {detail})" if detail else f"failed ({what})"


def last_line(path):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            lines = [l.strip() for l in f.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return ""
    lines = [l for l in lines if l]
    return lines[-1] if lines else ""


def run_measured(argv, workdir, tag, timeout, stats_path=None):
    """Runs argv with stdin from /dev/null and stdout/stderr in files under
    workdir; returns a RunResult. The child is killed after `timeout` s."""
    result = RunResult(argv)
    stdout_path = os.path.join(workdir, f"{tag}.stdout")
    stderr_path = os.path.join(workdir, f"{tag}.stderr")
    if stats_path and os.path.exists(stats_path):
        os.remove(stats_path)
    if not (os.path.isfile(argv[0]) and os.access(argv[0], os.X_OK)):
        result.exit_code = 127
        result.wall = 0.0
        result.last_stderr = f"{argv[0]} is not an executable file"
        return result

    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, stdout_path, flags, 0o644),
        (os.POSIX_SPAWN_OPEN, 2, stderr_path, flags, 0o644),
    ]
    start = time.monotonic()
    try:
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    except OSError as e:
        result.exit_code = 127
        result.wall = 0.0
        result.last_stderr = f"cannot start {argv[0]}: {e.strerror}"
        return result

    def on_alarm(signum, frame):
        result.timed_out = True
        try:
            os.kill(pid, signal.SIGKILL)  # only the child we started
        except ProcessLookupError:
            pass

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        _, status, rusage = os.wait4(pid, 0)  # retried after the alarm (PEP 475)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    result.wall = time.monotonic() - start
    result.exit_code = os.waitstatus_to_exitcode(status)
    result.maxrss_kib = rusage.ru_maxrss  # KiB on Linux
    result.cpu = rusage.ru_utime + rusage.ru_stime
    result.last_stderr = last_line(stderr_path)
    if stats_path and os.path.exists(stats_path):
        try:
            with open(stats_path) as f:
                result.stats = json.load(f)
        except (OSError, ValueError) as e:
            result.stats = {"error": f"unreadable stats file: {e}"}
    for path in (stdout_path,):
        if os.path.exists(path) and os.path.getsize(path) == 0:
            os.remove(path)
    return result


# ----------------------------------------------------------------------------
# Output comparison


def commit_note(runs):
    """Commits per second and the median/p99 commit duration (medians over the runs' --stats)."""
    stats = [r.stats for r in runs if r.stats and r.stats.get("commits") is not None]
    if not stats:
        return "no commit figures in --stats"
    per_s = statistics.median(s["commits"] / s["seconds"] if s.get("seconds") else 0 for s in stats)
    p50 = statistics.median(s.get("commit_p50_seconds", 0) for s in stats) * 1e3
    p99 = statistics.median(s.get("commit_p99_seconds", 0) for s in stats) * 1e3
    commits = statistics.median(s["commits"] for s in stats)
    epochs = statistics.median(s.get("epochs_committed", 0) for s in stats)
    return (f"{commits:.0f} commits of {epochs:.0f} epochs, {per_s:.1f} commits/s, "
            f"commit p50 {p50:.1f} ms, p99 {p99:.1f} ms")


def line_multiset_digest(path):
    """(line count, order-independent digest) of a file's lines, or of all
    files in it if it is a directory. Equal multisets give equal digests; the
    digest is a sum of per-line 64-bit hashes, valid within this process."""
    paths = [path]
    if os.path.isdir(path):
        paths = sorted(os.path.join(path, n) for n in os.listdir(path))
    count = 0
    total = 0
    for p in paths:
        with open(p, "rb") as f:
            for line in f:
                if line.endswith(b"\n"):
                    line = line[:-1]
                total += hash(line)
                count += 1
    return count, total & 0xFFFFFFFFFFFFFFFF


def remove_path(path):
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)


# ----------------------------------------------------------------------------
# Input verification (cheap, pure Python): the generator's invariants and a
# reference join whose output must equal the bare loop's.

EVENT_RE = re.compile(rb'^\{"user_id": "u(\d+)", "type": "(order|payment)", "order_id": (\d+)\}$')


def verify_input(input_dir, files, users, events):
    """Checks that every line has the tutorial's exact format, that user u is in
    file u % K, that order ids are unique and that every payment pays an
    earlier unpaid order of the same user. Returns (problems, digest of the
    expected join output, payment share)."""
    problems = []
    unpaid = {}  # user -> list of unpaid ids in order
    paid = {}
    seen_orders = set()
    count = 0
    payments = 0
    out_count = 0
    out_total = 0

    def problem(text):
        if len(problems) < 10:
            problems.append(text)

    for k in range(files):
        path = os.path.join(input_dir, f"part-{k:03d}.json")
        with open(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                count += 1
                m = EVENT_RE.match(raw.rstrip(b"\n"))
                if not m:
                    problem(f"{path}:{number}: unexpected format: {raw[:80]!r}")
                    continue
                user, kind, order_id = int(m.group(1)), m.group(2), int(m.group(3))
                if user >= users or user % files != k:
                    problem(f"{path}:{number}: user u{user} does not belong in file {k}")
                cart = unpaid.setdefault(user, [])
                done = paid.setdefault(user, [])
                if kind == b"order":
                    if order_id in seen_orders:
                        problem(f"{path}:{number}: order id {order_id} used twice")
                    seen_orders.add(order_id)
                    cart.append(order_id)
                else:
                    payments += 1
                    if order_id not in cart:
                        problem(f"{path}:{number}: payment {order_id} of u{user} pays no unpaid order")
                        continue
                    cart.remove(order_id)
                    done.append(order_id)
                line = '{"user_id": "u%d", "paid_order_ids": [%s], "unpaid_order_ids": [%s]}' % (
                    user, ", ".join(map(str, done)), ", ".join(map(str, cart)))
                out_total += hash(line.encode())
                out_count += 1
    if count != events:
        problem(f"{count} events in the files, expected {events}")
    share = payments / count if count else 0.0
    return problems, (out_count, out_total & 0xFFFFFFFFFFFFFFFF), share


# ----------------------------------------------------------------------------
# Scenarios


class Bench:
    """Runs the scenarios; holds the paths, the input and the results."""

    def __init__(self, args, build_dir, workdir):
        self.args = args
        self.workdir = workdir
        self.engine = find_engine(args.engine, build_dir)
        self.gen_cart = os.path.join(build_dir, "bench", "gen_cart")
        self.bare_loop = os.path.join(build_dir, "bench", "bare_loop")
        self.probe = os.path.join(build_dir, "bench", "latency_probe")
        self.input_dir = os.path.join(workdir, "input")
        self.input_bytes = 0
        self.prefix_dir = os.path.join(workdir, "prefix")  # the first events of every input file
        self.prefix_events = 0
        self.prefix_bytes = 0
        self.reference = None  # (count, digest) of the bare loop's output
        self.reference_bytes = 0
        self.window_input_dir = None  # the input with event times, made by the first window scenario
        self.results = {}

    # -- helpers ------------------------------------------------------------

    def path(self, name):
        return os.path.join(self.workdir, name)

    def row(self, name, **fields):
        row = {"scenario": name, "status": "ok", "events_per_s": None, "mb_per_s": None,
               "peak_rss_mb": None, "wall_s": None, "cpu_s": None, "ratio": None, "notes": "",
               "walls": []}
        row.update(fields)
        self.results[name] = row
        return row

    def failed(self, name, result, **fields):
        log(f"{name}: {result.failure()}  [{shlex.join(result.argv)}]")
        return self.row(name, status=result.failure(), command=shlex.join(result.argv), **fields)

    def ratio(self, events_per_s):
        bare = self.results.get("bare_loop")
        if not bare or bare["status"] != "ok" or not bare["events_per_s"]:
            return None
        return events_per_s / bare["events_per_s"]

    def summarize(self, name, items, input_bytes, runs, command, **fields):
        walls = [r.wall for r in runs]
        wall = statistics.median(walls)
        events_per_s = items / wall if wall > 0 else None
        return self.row(
            name,
            events_per_s=events_per_s,
            mb_per_s=(input_bytes / 1e6 / wall) if input_bytes and wall > 0 else None,
            peak_rss_mb=max(r.maxrss_kib for r in runs) * 1024 / 1e6,
            wall_s=wall,
            walls=walls,
            cpu_s=statistics.median(r.cpu for r in runs),
            cpus=[r.cpu for r in runs],
            ratio=self.ratio(events_per_s) if events_per_s else None,
            command=command,
            engine_stats=[r.stats for r in runs],
            **fields,
        )

    # -- input --------------------------------------------------------------

    def generate(self):
        a = self.args
        argv = [self.gen_cart, "--events", str(a.events), "--users", str(a.users),
                "--files", str(a.files), "--out", self.input_dir, "--seed", str(a.seed)]
        log(f"generating: {shlex.join(argv)}")
        result = run_measured(argv, self.workdir, "gen_cart", a.timeout)
        if not result.ok:
            log(f"gen_cart {result.failure()}")
            return False
        self.input_bytes = sum(os.path.getsize(os.path.join(self.input_dir, n))
                               for n in os.listdir(self.input_dir))
        log(f"generated {a.events} events, {self.input_bytes / 1e6:.1f} MB in {result.wall:.2f} s")
        self.make_prefix(PREFIX_EVENTS[1 if a.tiny else 0])
        return True

    def make_prefix(self, events):
        """The first `events` events of the input, spread over its files as evenly as lines allow."""
        os.makedirs(self.prefix_dir, exist_ok=True)
        names = sorted(os.listdir(self.input_dir))
        per_file = max(1, events // len(names))
        for n in names:
            with open(os.path.join(self.input_dir, n), "rb") as src, \
                    open(os.path.join(self.prefix_dir, n), "wb") as dst:
                for _, line in zip(range(per_file), src):
                    dst.write(line)
                    self.prefix_events += 1
            self.prefix_bytes += os.path.getsize(os.path.join(self.prefix_dir, n))

    # -- scenarios ----------------------------------------------------------

    # A throughput scenario: one command, run --runs times. The runs of all
    # throughput scenarios are interleaved (round i runs every scenario once,
    # in alternating order), so that a change of load on a shared machine hits
    # every scenario alike instead of the ones that happened to run then.

    def plan(self, name):
        """The command and bookkeeping of one throughput scenario."""
        a = self.args
        p = {"name": name, "stats": self.path(f"{name}.stats.json"), "out": None, "state": None,
             "items": a.events, "bytes": 0, "runs": [], "mismatches": [], "failure": None, "notes": []}
        if name == "bare_loop":
            p["out"] = self.path("bare_loop.out")
            p["argv"] = [self.bare_loop, "--input", self.input_dir, "--output", p["out"], "--stats", p["stats"]]
            p["bytes"] = self.input_bytes
        elif name.startswith("cart_join_w"):
            m = re.fullmatch(r"cart_join_w(\d+)(?:_s(\d+(?:p\d+)?))?(_recovery)?", name)
            workers, interval, recovery = int(m.group(1)), m.group(2), m.group(3)
            interval = interval.replace("p", ".") if interval else ("1" if recovery else None)
            prefix = interval == "0" and recovery
            p["out"] = self.path(f"{name}.out")
            p["argv"] = [self.engine, "run", "cart_join", "-w", str(workers), "--input",
                         self.prefix_dir if prefix else self.input_dir, "--output", p["out"], "--stats", p["stats"]]
            if recovery:
                p["state"] = self.path(f"{name}.state")
                p["argv"] += ["-d", p["state"]]
            if interval:
                p["argv"] += ["-s", interval]
            p["bytes"] = self.prefix_bytes if prefix else self.input_bytes
            if prefix:
                p["items"] = self.prefix_events
                p["prefix"] = True
                p["notes"].append(f"first {self.prefix_events} events")
        elif name == "exchange_w2":
            p["argv"] = [self.engine, "run", "bench_exchange", "-w", "2", "--items", str(a.events),
                         "--stats", p["stats"]]
            p["notes"].append(f"{a.events} items")
        elif name == "stateful_w1":
            p["argv"] = [self.engine, "run", "bench_stateful", "-w", "1", "--items", str(a.events),
                         "--keys", str(a.users), "--stats", p["stats"]]
            p["notes"].append(f"{a.events} items")
        else:
            raise ValueError(name)
        return p

    def run_once(self, p, i):
        """Runs scenario p once (round i); False if it failed."""
        name = p["name"]
        for path in (p["out"], p["state"]):
            if path:
                remove_path(path)  # a fresh output file and state dir for every run
        result = run_measured(p["argv"], self.workdir, name, self.args.timeout, p["stats"])
        if not result.ok:
            p["failure"] = result
            self.failed(name, result)
            return False
        log(f"{name} run {i + 1}/{self.args.runs}: {result.wall:.2f} s wall, {result.cpu:.2f} s cpu")
        p["runs"].append(result)
        if name == "bare_loop" and self.reference is None:
            return self.check_reference(p)
        if name.startswith("cart_join_w") and not p.get("prefix"):
            if not os.path.exists(p["out"]):
                p["mismatches"].append("no output file")
            elif i == 0 or self.args.verify:
                # Hashing every line takes the harness seconds, and a pause
                # before a run slows the next run (the bare loop most): after
                # the first round only the size is compared.
                digest = line_multiset_digest(p["out"])
                if digest != self.reference:
                    p["mismatches"].append(f"{digest[0]} lines vs {self.reference[0]} from bare_loop")
            elif os.path.getsize(p["out"]) != self.reference_bytes:
                size = os.path.getsize(p["out"])
                p["mismatches"].append(f"{size} bytes vs {self.reference_bytes} from bare_loop")
        for path in (p["out"], p["state"]):
            if path:
                remove_path(path)
        return True

    def check_reference(self, p):
        """After the bare loop's first run: its output becomes the reference
        (and, with --verify, is checked against a Python join)."""
        self.reference = line_multiset_digest(p["out"])
        self.reference_bytes = os.path.getsize(p["out"])
        p["notes"].append(f"{self.reference[0]} lines out")
        s = p["runs"][-1].stats or {}
        if s.get("skipped_invalid") or s.get("ignored_payments"):
            p["notes"].append(f"{s.get('skipped_invalid', 0)} invalid, {s.get('ignored_payments', 0)} ignored payments")
        if self.args.verify:
            log("verifying the input and the bare loop's output with a Python reference join")
            problems, expected, share = verify_input(self.input_dir, self.args.files, self.args.users,
                                                     self.args.events)
            for problem in problems:
                log(f"verify: {problem}")
            if problems or expected != self.reference:
                if expected != self.reference:
                    log(f"verify: bare_loop output ({self.reference[0]} lines) differs from the "
                        f"Python reference join ({expected[0]} lines)")
                self.row("bare_loop", status="failed (verification: see stderr)")
                return False
            p["notes"].append(f"verified ({share:.0%} payments)")
        remove_path(p["out"])
        return True

    def run_throughput(self, names):
        """Runs the throughput scenarios in interleaved rounds; False if the bare loop failed."""
        plans = [self.plan(n) for n in names]
        for i in range(self.args.runs):
            log(f"round {i + 1}/{self.args.runs} (load {os.getloadavg()[0]:.2f})")
            order = plans if i % 2 == 0 else plans[:1] + plans[:0:-1]  # bare loop first, then alternate
            for p in order:
                if p["failure"] is not None:
                    continue
                if not self.run_once(p, i) and p["name"] == "bare_loop":
                    return False  # no reference: nothing else can be compared
        for p in plans:
            self.summarize_plan(p)
        return True

    def summarize_plan(self, p):
        name = p["name"]
        if p["failure"] is not None or not p["runs"]:
            return  # failed() already wrote the row
        notes = list(p["notes"])
        status = "ok"
        if name.startswith("cart_join_w"):
            if p["mismatches"]:
                status = "MISMATCH"
                notes.append(f"MISMATCH ({p['mismatches'][0]})")
                log(f"{name}: output differs from bare_loop's: {p['mismatches'][0]}")
            elif not p.get("prefix"):
                notes.append("output = bare_loop's")
        row = self.summarize(name, p["items"], p["bytes"], p["runs"], shlex.join(p["argv"]), status=status)
        if name == "bare_loop":
            row["ratio"] = 1.0
        # The same run without -d (or, for other -s values, the default -s 10 run), by events/s.
        plain = re.match(r"cart_join_w\d+", name)
        base = self.results.get(plain.group(0)) if plain and name != plain.group(0) else None
        if base and base["status"] == "ok" and base["events_per_s"] and row["events_per_s"]:
            row["vs_plain"] = row["events_per_s"] / base["events_per_s"]
            notes.append(f"{row['vs_plain']:.2f}x the events/s of {base['scenario']}")
        if name.endswith("_recovery"):
            notes.append(commit_note(p["runs"]))
        row["notes"] = "; ".join(notes)

    def run_resume(self, name):
        keys = RESUME_KEYS[name][1 if self.args.tiny else 0]
        built = self.path(f"{name}.state0")
        state = self.path(f"{name}.state")
        stats = self.path(f"{name}.stats.json")
        remove_path(built)
        build_argv = [self.engine, "run", "bench_stateful", "-w", "1", "--items", str(keys),
                      "--keys", str(keys), "-d", built]
        result = run_measured(build_argv, self.workdir, f"{name}.build", self.args.timeout)
        if not result.ok:
            self.failed(name, result)
            return
        log(f"{name}: state with {keys} keys built in {result.wall:.2f} s")
        build_wall = result.wall
        argv = [self.engine, "run", "bench_stateful", "-w", "1", "--items", str(RESUME_ITEMS),
                "--keys", str(keys), "-d", state, "--stats", stats]
        runs = []
        firsts = []
        for i in range(self.args.runs):
            remove_path(state)
            shutil.copytree(built, state, symlinks=True)  # every run resumes the same state
            result = run_measured(argv, self.workdir, name, self.args.timeout, stats)
            if not result.ok:
                self.failed(name, result)
                return
            first = (result.stats or {}).get("first_item_seconds")
            log(f"{name} run {i + 1}/{self.args.runs}: {result.wall:.3f} s, first_item_seconds {first}")
            runs.append(result)
            if isinstance(first, (int, float)):
                firsts.append(float(first))
        remove_path(state)
        remove_path(built)
        walls = [r.wall for r in runs]
        if firsts:
            first = statistics.median(firsts)
            notes = f"first item after resume {first:.4f} s ({keys} keys; state built in {build_wall:.1f} s)"
        else:
            first = None
            notes = f"no first_item_seconds in --stats ({keys} keys)"
        self.row(name, peak_rss_mb=max(r.maxrss_kib for r in runs) * 1024 / 1e6,
                 wall_s=statistics.median(walls), walls=walls, cpu_s=statistics.median(r.cpu for r in runs),
                 first_item_seconds=first, keys=keys,
                 command=shlex.join(argv), engine_stats=[r.stats for r in runs], notes=notes)

    def run_many_files(self, name):
        """cart_join -w 2 -d over a directory of many small files under `ulimit -n 256`:
        peak RSS and rate; the output is compared with the bare loop's on the same files."""
        files, events, users = MANY_FILES[self.args.tiny]
        input_dir = self.path("many_files.input")
        argv = [self.gen_cart, "--events", str(events), "--users", str(users), "--files", str(files),
                "--out", input_dir, "--seed", str(self.args.seed)]
        result = run_measured(argv, self.workdir, "many_files.gen", self.args.timeout)
        if not result.ok:
            self.failed(name, result)
            return
        input_bytes = sum(os.path.getsize(os.path.join(input_dir, n)) for n in os.listdir(input_dir))
        ref_out = self.path("many_files.bare.out")
        result = run_measured([self.bare_loop, "--input", input_dir, "--output", ref_out], self.workdir,
                              "many_files.bare", self.args.timeout)
        if not result.ok:
            self.failed(name, result)
            return
        reference = line_multiset_digest(ref_out)
        remove_path(ref_out)
        out = self.path("many_files.out")
        state = self.path("many_files.state")
        stats = self.path("many_files.stats.json")
        engine_argv = [self.engine, "run", "cart_join", "-w", "2", "--input", input_dir, "--output", out,
                       "-d", state, "--stats", stats]
        argv = ["/bin/sh", "-c", f'ulimit -n {MANY_FILES_NOFILE} && exec "$0" "$@"'] + engine_argv
        runs = []
        mismatch = None
        for i in range(self.args.runs):
            remove_path(out)
            remove_path(state)
            result = run_measured(argv, self.workdir, name, self.args.timeout, stats)
            if not result.ok:
                self.failed(name, result)
                return
            log(f"{name} run {i + 1}/{self.args.runs}: {result.wall:.2f} s, peak RSS "
                f"{result.maxrss_kib / 1024:.0f} MiB")
            if i == 0 and line_multiset_digest(out) != reference:
                mismatch = "output differs from bare_loop's"
            runs.append(result)
        for path in (out, state, input_dir):
            remove_path(path)
        notes = [f"{files} files, {input_bytes / 1e6:.1f} MB, ulimit -n {MANY_FILES_NOFILE}, -w 2 -d",
                 f"MISMATCH ({mismatch})" if mismatch else "output = bare_loop's"]
        row = self.summarize(name, events, input_bytes, runs, shlex.join(argv),
                             status="MISMATCH" if mismatch else "ok", notes="; ".join(notes))
        row["ratio"] = None  # another input than the bare loop's row

    def run_windows(self, name):
        """cart_stats -w 1 and -w 2 against the bare loop's --window mode on the same
        timestamped events, in interleaved rounds; outputs compared as multisets of lines."""
        a = self.args
        spec = WINDOWS[name]
        if self.window_input_dir is None:
            input_dir = self.path("windows.input")
            argv = [self.gen_cart, "--events", str(a.events), "--users", str(a.users), "--files", str(a.files),
                    "--out", input_dir, "--seed", str(a.seed)] + WINDOW_TS_FLAGS
            result = run_measured(argv, self.workdir, "windows.gen", a.timeout)
            if not result.ok:
                self.failed(name, result)
                return
            self.window_input_dir = input_dir
        input_dir = self.window_input_dir
        input_bytes = sum(os.path.getsize(os.path.join(input_dir, n)) for n in os.listdir(input_dir))
        window_args = ["--window", spec, "--lateness", WINDOW_LATENESS]
        plans = [{"row": f"{name}_bare", "argv_head": [self.bare_loop]}]
        for workers in (1, 2):
            plans.append({"row": f"{name}_w{workers}", "argv_head": [self.engine, "run", "cart_stats", "-w",
                                                                      str(workers)]})
        for p in plans:
            p["out"] = self.path(f"{p['row']}.out")
            p["stats"] = self.path(f"{p['row']}.stats.json")
            p["argv"] = p["argv_head"] + ["--input", input_dir, "--output", p["out"], "--stats", p["stats"]] + window_args
            p["runs"] = []
        reference = None
        mismatch = {}
        for i in range(a.runs):
            order = plans if i % 2 == 0 else plans[:1] + plans[:0:-1]
            for p in order:
                remove_path(p["out"])
                result = run_measured(p["argv"], self.workdir, p["row"], a.timeout, p["stats"])
                if not result.ok:
                    self.failed(p["row"], result)
                    return
                log(f"{p['row']} run {i + 1}/{a.runs}: {result.wall:.2f} s wall, {result.cpu:.2f} s cpu")
                p["runs"].append(result)
                if i == 0:
                    digest = line_multiset_digest(p["out"])
                    if reference is None:
                        reference = digest
                    elif digest != reference:
                        mismatch[p["row"]] = f"{digest[0]} lines vs {reference[0]} from the bare loop"
                remove_path(p["out"])
        bare = None
        for p in plans:
            row_name = p["row"]
            notes = [f"--window {spec} --lateness {WINDOW_LATENESS}"]
            if p is plans[0]:
                s = p["runs"][0].stats or {}
                notes.append(f"{reference[0]} windows out, {s.get('late', '?')} late")
            elif row_name in mismatch:
                notes.append(f"MISMATCH ({mismatch[row_name]})")
                log(f"{row_name}: output differs from the bare window loop's: {mismatch[row_name]}")
            else:
                notes.append(f"output = bare window loop's; vs bare loop = vs {plans[0]['row']}")
            row = self.summarize(row_name, a.events, input_bytes, p["runs"], shlex.join(p["argv"]),
                                 status="MISMATCH" if row_name in mismatch else "ok", notes="; ".join(notes))
            if bare is None:
                bare = row
                row["ratio"] = 1.0
            elif bare["events_per_s"] and row["events_per_s"]:
                row["ratio"] = row["events_per_s"] / bare["events_per_s"]  # vs the bare window loop
        self.reset_window_input_if_done(name)

    def reset_window_input_if_done(self, name):
        """Removes the timestamped input after the last window scenario of this run."""
        remaining = [n for n in self.args.scenario_list if n in WINDOWS]
        if remaining and name == remaining[-1] and self.window_input_dir:
            remove_path(self.window_input_dir)
            self.window_input_dir = None

    def start_kafka(self, topic, partitions):
        """`engine kafka-mock` in the background; returns (process, bootstrap address)."""
        out = self.path(f"kafka-{topic}.out")
        proc = subprocess.Popen([self.engine, "kafka-mock", "--topic", f"{topic}:{partitions}"],
                                stdout=open(out, "w"), stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with open(out) as f:
                line = f.readline()
            if line.endswith("\n"):
                return proc, line.strip()
            time.sleep(0.01)
        proc.kill()
        raise RuntimeError("engine kafka-mock printed no address")

    def stop(self, proc, sig=signal.SIGTERM):
        proc.send_signal(sig)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def run_kafka(self, name):
        """cart_join -w N from a Kafka topic holding the generated input (the
        mock cluster in its own process), to a file; compared with the bare loop."""
        workers = int(name[-1])
        mock, address = self.start_kafka("bench", KAFKA_PARTITIONS)
        try:
            fill = run_measured([self.probe, "--fill-from", self.input_dir, "--kafka", f"{address}/bench"],
                                self.workdir, f"{name}.fill", self.args.timeout)
            if not fill.ok:
                self.failed(name, fill)
                return
            out = self.path(f"{name}.out")
            argv = [self.engine, "run", "cart_join", "-w", str(workers), "--input", f"kafka://{address}/bench",
                    "--kafka-bounded", "--output", out, "--stats", self.path(f"{name}.stats.json")]
            runs = []
            mismatch = None
            for i in range(self.args.runs):
                remove_path(out)
                result = run_measured(argv, self.workdir, name, self.args.timeout, self.path(f"{name}.stats.json"))
                if not result.ok:
                    self.failed(name, result)
                    return
                log(f"{name} run {i + 1}/{self.args.runs}: {result.wall:.2f} s")
                if i == 0 and line_multiset_digest(out) != self.reference:
                    mismatch = "output differs from bare_loop's"
                runs.append(result)
            remove_path(out)
        finally:
            self.stop(mock, signal.SIGINT)
        plain = self.results.get(f"cart_join_w{workers}")
        notes = [f"mock cluster in its own process, {KAFKA_PARTITIONS} partitions, --kafka-bounded; "
                 f"filled in {fill.wall:.1f} s"]
        row = self.summarize(name, self.args.events, self.input_bytes, runs, shlex.join(argv),
                             status="MISMATCH" if mismatch else "ok")
        if plain and plain["status"] == "ok" and plain["wall_s"]:
            row["vs_plain"] = plain["wall_s"] / row["wall_s"]
            notes.append(f"{row['vs_plain']:.2f}x the file path (cart_join_w{workers})")
        notes.append(f"MISMATCH ({mismatch})" if mismatch else "output = bare_loop's")
        row["notes"] = "; ".join(notes)

    def run_steady(self, name):
        """Steady state: one long run without -d, then with -d at every STEADY_INTERVALS value,
        each once; rows NAME_plain and NAME_d_sX, the output size checked against the plain run's."""
        workers = int(name[len("steady_w"):])
        events, users = STEADY_INPUT[self.args.tiny]
        steady_dir = self.path("steady_input")
        if not os.path.isdir(steady_dir):
            argv = [self.gen_cart, "--events", str(events), "--users", str(users), "--files", "2",
                    "--out", steady_dir, "--seed", str(self.args.seed)]
            log(f"generating: {shlex.join(argv)}")
            result = run_measured(argv, self.workdir, "gen_cart", self.args.timeout)
            if not result.ok:
                self.failed(name, result)
                return
        size = sum(os.path.getsize(os.path.join(steady_dir, n)) for n in os.listdir(steady_dir))
        out = self.path(f"{name}.out")
        stats = self.path(f"{name}.stats.json")
        state = self.path(f"{name}.state")
        plain = None
        plain_bytes = None
        for interval in (None,) + STEADY_INTERVALS:
            row_name = f"{name}_plain" if interval is None else f"{name}_d_s{interval}"
            argv = [self.engine, "run", "cart_join", "-w", str(workers), "--input", steady_dir,
                    "--output", out, "--stats", stats]
            if interval is not None:
                argv += ["-d", state, "-s", interval]
            remove_path(out)
            remove_path(state)
            result = run_measured(argv, self.workdir, row_name, self.args.timeout, stats)
            if not result.ok:
                self.failed(row_name, result)
                continue
            log(f"{row_name}: {result.wall:.2f} s wall")
            out_bytes = os.path.getsize(out) if os.path.exists(out) else -1
            row = self.summarize(row_name, events, size, [result], shlex.join(argv))
            notes = [f"{events} events, {users} users, 1 run"]
            if interval is None:
                plain, plain_bytes = row, out_bytes
            else:
                if out_bytes != plain_bytes:
                    row["status"] = "MISMATCH"
                    notes.append(f"MISMATCH (output {out_bytes} bytes vs {plain_bytes} without -d)")
                if plain and plain["events_per_s"]:
                    row["vs_plain"] = row["events_per_s"] / plain["events_per_s"]
                    notes.append(f"{row['vs_plain']:.2f}x the events/s without -d")
                notes.append(commit_note([result]))
            row["notes"] = "; ".join(notes)
        remove_path(out)
        remove_path(state)

    def run_latency(self, name):
        """End-to-end latency at fixed rates: latency_probe feeds orders carrying
        their send time into a followed file or a Kafka topic and reads the
        output file back; cart_join -w 2 -d -s 1 runs in between."""
        kafka = name.endswith("kafka")
        for rate in LATENCY_RATES[self.args.tiny]:
            events = int(rate * LATENCY_SECONDS[self.args.tiny])
            tag = f"{name}_{rate // 1000}k" if rate >= 1000 else f"{name}_{rate}"
            out = self.path(f"{tag}.out")
            state = self.path(f"{tag}.state")
            mock = None
            if kafka:
                mock, address = self.start_kafka(tag, KAFKA_PARTITIONS)
                source = ["--kafka", f"{address}/{tag}"]
                engine_input = ["--input", f"kafka://{address}/{tag}"]
            else:
                feed = self.path(f"{tag}.in")
                open(feed, "w").close()
                source = ["--file", feed]
                engine_input = ["--input", feed, "--follow"]
            engine_argv = [self.engine, "run", "cart_join", "-w", "2", "-d", state, "-s", "1"] + engine_input + [
                "--output", out]
            engine = subprocess.Popen(engine_argv, stdout=subprocess.DEVNULL, stderr=open(self.path(f"{tag}.err"), "w"),
                                      stdin=subprocess.DEVNULL)
            time.sleep(1.0)  # the engine is up and idle before the first event is sent
            probe = [self.probe, "--rate", str(rate), "--events", str(events), "--users", str(max(1000, events // 10)),
                     "--output", out] + source
            result = run_measured(probe, self.workdir, tag, self.args.timeout)
            self.stop(engine)
            if mock:
                self.stop(mock, signal.SIGINT)
            if not result.ok:
                self.failed(tag, result)
                continue
            with open(os.path.join(self.workdir, f"{tag}.stdout")) as f:
                lat = json.load(f)
            complete = lat["seen"] >= lat["events"]
            self.row(tag, status="ok" if complete else f"incomplete ({lat['seen']} of {lat['events']} lines)",
                     events_per_s=lat["achieved_rate"], wall_s=result.wall, p50_ms=lat["p50_ms"], p99_ms=lat["p99_ms"],
                     max_ms=lat["max_ms"], command=shlex.join(engine_argv) + " | " + shlex.join(probe),
                     notes=(f"latency p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms, max {lat['max_ms']:.1f} ms"
                            f"; fed at {lat['achieved_rate']:,.0f} of {rate:,} events/s"))
            for path in (out, state):
                remove_path(path)

    def run(self, name):
        log(f"scenario {name}")
        if name == "many_files":
            self.run_many_files(name)
        elif name.startswith("kafka_w"):
            self.run_kafka(name)
        elif name.startswith("latency_"):
            self.run_latency(name)
        elif name.startswith("steady_w"):
            self.run_steady(name)
        elif name in WINDOWS:
            self.run_windows(name)
        else:
            self.run_resume(name)


# ----------------------------------------------------------------------------
# Report


def machine_info():
    info = {"host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            info["cpu"] = m.group(1) if m else platform.processor()
        with open("/proc/meminfo") as f:
            m = re.search(r"^MemTotal:\s*(\d+) kB", f.read(), re.M)
            info["memory_gb"] = round(int(m.group(1)) / 1e6, 1) if m else None
    except OSError:
        pass
    try:
        rev = subprocess.run(["git", "-C", REPO_ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        info["git"] = rev.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git"] = None
    return info


def fmt_num(value, spec):
    return "-" if value is None else format(value, spec)


def markdown_table(rows):
    head = ["scenario", "events/s", "MB/s", "peak RSS MB", "wall s", "cpu s", "vs bare loop", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * 6 + ["---"]) + "|"]
    for r in rows:
        if r["status"] not in ("ok", "MISMATCH"):
            cells = [r["scenario"], r["status"], "", "", "", "", "", r.get("notes", "")]
        else:
            cells = [
                r["scenario"],
                fmt_num(r["events_per_s"], ",.0f"),
                fmt_num(r["mb_per_s"], ".1f"),
                fmt_num(r["peak_rss_mb"], ".1f"),
                fmt_num(r["wall_s"], ".3f"),
                fmt_num(r.get("cpu_s"), ".2f"),
                fmt_num(r["ratio"], ".2f"),
                r["notes"],
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_lines(results, args):
    """One line per target that this run measured: met or not, with the number."""
    out = []

    def ok(row):
        return row is not None and row["status"] == "ok"

    def line(what, value, goal, met):
        out.append(f"- {what}: {value} (target {goal}): {'met' if met else 'NOT met'}")

    w1, w2 = results.get("cart_join_w1"), results.get("cart_join_w2")
    w2r = results.get("cart_join_w2_recovery")
    if ok(w1) and w1["ratio"] is not None:
        line("cart_join -w 1 vs bare loop", f"{w1['ratio']:.2f}x", ">= 0.85x", w1["ratio"] >= 0.85)
    if ok(w2) and w2["ratio"] is not None:
        line("cart_join -w 2 vs bare loop", f"{w2['ratio']:.2f}x", ">= 1.6x", w2["ratio"] >= 1.6)
    if ok(w2r) and w2r.get("vs_plain") is not None:
        line("cart_join -w 2 -d -s 1 vs -w 2", f"{w2r['vs_plain']:.2f}x", ">= 0.9x", w2r["vs_plain"] >= 0.9)
    s0 = results.get("cart_join_w2_s0")
    if ok(s0) and s0.get("vs_plain") is not None:
        line("cart_join -w 2 -s 0 vs -w 2 (-s 10)", f"{s0['vs_plain']:.2f}x", ">= 0.5x", s0["vs_plain"] >= 0.5)
    s0d = results.get("cart_join_w2_s0_recovery")
    if ok(s0d) and s0d.get("vs_plain") is not None:
        line("cart_join -w 2 -s 0 -d vs -w 2 without -d", f"{s0d['vs_plain']:.3f}x", ">= 0.1x", s0d["vs_plain"] >= 0.1)
    for workers in (1, 2):
        for interval, goal in zip(STEADY_INTERVALS, (0.9, 0.8, 0.6)):
            r = results.get(f"steady_w{workers}_d_s{interval}")
            if ok(r) and r.get("vs_plain") is not None:
                line(f"steady state -w {workers} -d -s {interval} vs without -d", f"{r['vs_plain']:.2f}x",
                     f">= {goal}x", r["vs_plain"] >= goal)
    r1m = results.get("resume_1m")
    if r1m is not None and r1m.get("first_item_seconds") is not None:
        line(f"resume to first item, {r1m['keys']} keys", f"{r1m['first_item_seconds']:.3f} s", "< 0.5 s",
             r1m["first_item_seconds"] < 0.5)
    rss = [r["peak_rss_mb"] for n, r in results.items() if n.startswith("cart_join") and ok(r)]
    if rss:
        line("peak RSS of cart_join", f"{max(rss):.0f} MB", "< 400 MB", max(rss) < 400)
    many = results.get("many_files")
    if ok(many) and not args.tiny:
        line(f"peak RSS over {MANY_FILES[False][0]} files (ulimit -n {MANY_FILES_NOFILE})",
             f"{many['peak_rss_mb']:.0f} MB", "< 200 MB", many["peak_rss_mb"] < 200)
    if out and (args.events, args.users, args.files) != (2_000_000, 100_000, 2):
        out.insert(0, f"- (this run used {args.events} events, {args.users} users, {args.files} files: "
                      "the targets are for 2000000 / 100000 / 2)")
    return out


def find_engine(explicit, build_dir):
    """--engine if given, else BUILD/engine, else BUILD/bin/engine (BUILD/engine
    may be the binary dir of the engine/ library rather than the CLI)."""
    if explicit:
        return os.path.abspath(explicit)
    candidates = [os.path.join(build_dir, "engine"), os.path.join(build_dir, "bin", "engine")]
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return candidates[0]


def resolve_build_dir(build_dir):
    if os.path.isabs(build_dir) or os.path.isdir(build_dir):
        return os.path.abspath(build_dir)
    return os.path.join(REPO_ROOT, build_dir)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="scenarios: " + ", ".join(SCENARIOS))
    p.add_argument("--build-dir", default="build", help="CMake build dir (default: build)")
    p.add_argument("--events", type=int, help="events to generate (default 2000000; --tiny 20000)")
    p.add_argument("--users", type=int, help="users (default 100000; --tiny 2000)")
    p.add_argument("--engine", help="engine CLI binary (default: BUILD/engine, else BUILD/bin/engine)")
    p.add_argument("--files", type=int, default=2, help="input files (default 2)")
    p.add_argument("--runs", type=int, help="runs per scenario, the median is reported (default 3; --tiny 1)")
    p.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    p.add_argument("--scenarios", help="comma-separated subset (bare_loop always runs first)")
    p.add_argument("--tiny", action="store_true", help="CI size: 20k events, 2k users, 1 run, resume 1k/10k keys")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--verify", action="store_true",
                   help="check the input's invariants and the bare loop against a Python join (on with --tiny)")
    p.add_argument("--strict", action="store_true", help="exit non-zero if any scenario fails or mismatches")
    p.add_argument("--timeout", type=float, default=600, help="seconds before a child is killed (default 600)")
    p.add_argument("--tmp-dir", help="where to create the scratch dir (default: system temp)")
    p.add_argument("--keep", action="store_true", help="keep the scratch dir (input, logs)")
    args = p.parse_args(argv)
    defaults = {"events": (2_000_000, 20_000), "users": (100_000, 2_000), "runs": (3, 1)}
    for key, (normal, tiny) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, tiny if args.tiny else normal)
    if args.tiny:
        args.verify = True
    if args.events < 1 or args.users < 1 or args.files < 1 or args.runs < 1:
        p.error("--events, --users, --files and --runs must be at least 1")
    if args.scenarios:
        names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        unknown = [s for s in names if s not in SCENARIOS]
        if unknown:
            p.error(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
        args.scenario_list = [s for s in SCENARIOS if s in names or s == "bare_loop"]
    else:
        args.scenario_list = list(SCENARIOS)
    return args


def main(argv):
    args = parse_args(argv)
    build_dir = resolve_build_dir(args.build_dir)
    for tool in ("gen_cart", "bare_loop", "latency_probe"):
        if not os.access(os.path.join(build_dir, "bench", tool), os.X_OK):
            print(f"harness: {build_dir}/bench/{tool} not found; build it with: "
                  f"cmake --build {args.build_dir} --target gen_cart bare_loop", file=sys.stderr)
            return 2

    workdir = tempfile.mkdtemp(prefix="engine-bench-", dir=args.tmp_dir)
    bench = Bench(args, build_dir, workdir)
    exit_code = 0
    load_before = os.getloadavg()
    try:
        if not bench.generate():
            return 1
        once = set(RESUME_KEYS) | {"many_files", "kafka_w1", "kafka_w2", "latency_file", "latency_kafka",
                                    "steady_w1", "steady_w2"} | set(WINDOWS)
        throughput = [n for n in args.scenario_list if n not in once]
        if not bench.run_throughput(throughput):
            exit_code = 1
        else:
            for name in args.scenario_list:
                if name in once:
                    bench.run(name)
    finally:
        if args.keep:
            log(f"scratch dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    info = machine_info()
    command = "python3 " + shlex.join([os.path.relpath(__file__)] + list(argv))
    rows = [r for n, r in bench.results.items() if any(n == s or n.startswith(s + "_") for s in args.scenario_list)]
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"## engine benchmarks ({when})\n")
    print(f"- command: `{command}`")
    print(f"- machine: {info.get('cpu', '?')}, {info['cpus']} CPUs, {info.get('memory_gb', '?')} GB RAM, "
          f"Linux {info['kernel']}" + (f", git {info['git']}" if info.get("git") else ""))
    print(f"- input: {args.events} events, {args.users} users, {args.files} files, "
          f"{bench.input_bytes / 1e6:.1f} MB (warm page cache); median of {args.runs} run(s); "
          f"MB = 10^6 bytes; vs bare loop = events/s ratio (wall time)")
    load_after = os.getloadavg()
    print(f"- load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after; runs of the "
          f"throughput scenarios interleaved; cpu s = user + system time of the process\n")
    print(markdown_table(rows))
    targets = target_lines(bench.results, args)
    if targets:
        print("\nTargets (throughput ones for the 2M-event, 100k-user, 2-file input):\n")
        print("\n".join(targets))
    sys.stdout.flush()

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": when, "command": command, "machine": info,
                       "params": {"events": args.events, "users": args.users, "files": args.files,
                                  "runs": args.runs, "seed": args.seed, "input_bytes": bench.input_bytes},
                       "results": rows}, f, indent=2)
            f.write("\n")
    if args.strict and any(r["status"] != "ok" for r in rows):
        exit_code = exit_code or 1
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
