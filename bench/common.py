"""Helpers shared by the benchmark harness: machine facts, a process-tree monitor, subprocesses.

Nothing here starts Ray. The monitor samples the resident memory and CPU time of a process and
all its descendants (the Ray driver, raylet, GCS, workers) from a background thread, because a
Ray run's memory lives in many processes and ``resource.getrusage`` sees only one.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
BENCH_CACHE = Path("~/.cache/privacy-ray/bench").expanduser()
#: Environment every benchmark subprocess runs with: offline model loading, no usage stats,
#: no tokenizer thread pools fighting torch for the two cores.
BENCH_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
    "PYTHONUNBUFFERED": "1",
}
VERSIONED_PACKAGES = (
    "privacy-ray",
    "ray",
    "torch",
    "sentence-transformers",
    "transformers",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "faiss-cpu",
    "great-expectations",
    "psutil",
)


def log(msg: str) -> None:
    """Progress goes to stderr so stdout stays free for machine-readable output."""
    stamp = datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- machine facts


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask), which a container may narrow."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def versions(packages: Iterable[str] = VERSIONED_PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_info() -> dict[str, Any]:
    """Commit and whether the tree had local changes, so a result names the code it measured."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    status = git("status", "--porcelain", "--untracked-files=no")
    dirty = bool(status) if status is not None else None
    return {"commit": git("rev-parse", "HEAD"), "dirty": dirty}


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, memory and OS of this machine; the load average goes in separately."""
    mem_gb = None
    try:
        import psutil

        mem_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover - psutil ships with Ray
        pass
    return {
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "cpu_model": cpu_model(),
        "memory_gb": mem_gb,
        "platform": platform.platform(),
    }


def host_slug() -> str:
    """The hostname reduced to characters safe in a file name."""
    name = socket.gethostname().split(".")[0].lower()
    slug = "".join(c if c.isalnum() or c == "-" else "-" for c in name).strip("-")
    return slug or "host"


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- statistics


def median(values: Sequence[float | None]) -> float | None:
    """Median of the values that were measured; None when none were."""
    kept = [float(v) for v in values if v is not None]
    return statistics.median(kept) if kept else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def overhead_pct(measured_s: float | None, baseline_s: float | None) -> float | None:
    """Extra time of ``measured_s`` over ``baseline_s``, in percent of the baseline."""
    r = ratio(measured_s, baseline_s)
    return None if r is None else (r - 1.0) * 100.0


# --------------------------------------------------------------------------- process monitor


def _kind(name: str, cmdline: Sequence[str], root_pid: int, pid: int) -> str:
    """A coarse role for a process of a Ray session, for the memory breakdown."""
    if pid == root_pid:
        return "driver"
    text = " ".join([name, *cmdline[:6]])
    if name.startswith("ray::") and name.endswith("Agent"):  # DashboardAgent, RuntimeEnvAgent
        return "ray_helpers"
    if name.startswith("ray::") or "default_worker.py" in text:  # its argv names the raylet
        return "workers"
    if "raylet" in text:
        return "raylet"
    if "gcs_server" in text:
        return "gcs"
    if "/ray/" in text:  # .../site-packages/ray/...: dashboard agent, log monitor, ...
        return "ray_helpers"
    return "other"


def _title(proc: Any) -> str:
    """A process's current title, short: Ray workers rewrite theirs to the task they run."""
    cmd = proc.cmdline()
    title = " ".join(cmd[:2]) if cmd else proc.name()
    return title[:80]


class ProcessTreeMonitor:
    """Samples RSS and CPU time of ``root_pid`` and its descendants every ``interval_s``.

    Peak memory is the largest *sum* of RSS over the tree at one sample (what the machine had
    to hold at once), with its breakdown by role. CPU seconds add up, per process, the CPU
    time it used since the monitor first saw it (processes that exit between two samples lose
    at most one interval). RSS counts shared pages (the object store mapping, shared
    libraries) once per process that touches them, so the sum is an upper bound.
    """

    def __init__(self, root_pid: int | None = None, interval_s: float = 0.2) -> None:
        import psutil

        self._psutil = psutil
        self.root_pid = root_pid or os.getpid()
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._sampling = threading.Lock()
        self._procs: dict[int, Any] = {}
        self._cpu_first: dict[int, float] = {}
        self._cpu_last: dict[int, float] = {}
        self._kinds: dict[int, str] = {}
        self._titles: dict[int, str] = {}
        self._other_names: set[str] = set()
        self.samples = 0
        self.own_cpu_seconds = 0.0
        self.peak_rss_bytes = 0
        self.peak_breakdown: dict[str, int] = {}
        self.max_processes = 0

    def _tree(self) -> list[Any]:
        ps = self._psutil
        try:
            root = self._procs.get(self.root_pid) or ps.Process(self.root_pid)
            found = [root, *root.children(recursive=True)]
        except ps.Error:
            return []
        procs = []
        for p in found:
            known = self._procs.get(p.pid)
            if known is not None:  # reuse the object: psutil caches create_time per object
                procs.append(known)
                continue
            self._procs[p.pid] = p
            try:
                name = p.name()
                self._kinds[p.pid] = _kind(name, p.cmdline(), self.root_pid, p.pid)
            except ps.Error:
                name = "?"
                self._kinds[p.pid] = "other"
            if self._kinds[p.pid] in ("other", "ray_helpers"):
                self._other_names.add(name)
            procs.append(p)
        return procs

    def sample(self) -> None:
        """Take one sample now (the thread calls this; so may the measuring code)."""
        with self._sampling:
            self._sample()

    def _sample(self) -> None:
        ps = self._psutil
        total = 0
        by_kind: dict[str, int] = {}
        alive = 0
        for p in self._tree():
            try:
                with p.oneshot():
                    rss = p.memory_info().rss
                    cpu = p.cpu_times()
                # titles change when a worker takes a new task; every tenth sample is enough
                title = _title(p) if p.pid not in self._titles or self.samples % 10 == 0 else ""
            except ps.Error:
                continue
            alive += 1
            used = cpu.user + cpu.system
            with self._lock:
                self._cpu_first.setdefault(p.pid, used)
                self._cpu_last[p.pid] = used
                if title:
                    self._titles[p.pid] = title
            total += rss
            kind = self._kinds.get(p.pid, "other")
            by_kind[kind] = by_kind.get(kind, 0) + rss
        with self._lock:
            self.samples += 1
            self.max_processes = max(self.max_processes, alive)
            if total > self.peak_rss_bytes:
                self.peak_rss_bytes = total
                self.peak_breakdown = by_kind

    def cpu_seconds(self) -> float:
        """CPU time used by the tree since each process was first seen."""
        with self._lock:
            return sum(self._cpu_last[pid] - self._cpu_first[pid] for pid in self._cpu_last)

    def cpu_seconds_by_process(self, top: int = 12) -> dict[str, float]:
        """The busiest processes' CPU seconds, by role and last process title (a Ray worker's
        title names the actor or task it ran last, e.g. ``ray::MapWorker(MapBatches(embed))``);
        where the CPU time that is not a stage's went."""
        with self._lock:
            used = {
                pid: self._cpu_last[pid] - self._cpu_first[pid] for pid in self._cpu_last
            }
            labels = {
                pid: f"{self._kinds.get(pid, 'other')} {self._titles.get(pid, '?')} [{pid}]"
                for pid in used
            }
        busiest = sorted(used, key=used.get, reverse=True)[:top]
        return {labels[pid]: round(used[pid], 2) for pid in busiest}

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self.own_cpu_seconds = time.thread_time()  # what the sampling itself cost
            self._stop.wait(self.interval_s)

    def start(self) -> ProcessTreeMonitor:
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="bench-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sample()
        return self.report()

    def report(self) -> dict[str, Any]:
        mib = 2**20
        return {
            "peak_rss_mb": round(self.peak_rss_bytes / mib, 1),
            "peak_rss_mb_by_role": {
                k: round(v / mib, 1) for k, v in sorted(self.peak_breakdown.items())
            },
            "other_processes": sorted(self._other_names),
            "cpu_seconds": round(self.cpu_seconds(), 2),
            "cpu_seconds_by_process": self.cpu_seconds_by_process(),
            "max_processes": self.max_processes,
            "samples": self.samples,
            "monitor_cpu_seconds": round(self.own_cpu_seconds, 2),
            "interval_s": self.interval_s,
        }


# --------------------------------------------------------------------------- subprocesses


def subprocess_env() -> dict[str, str]:
    """This environment plus :data:`BENCH_ENV`, without a cluster address or config overrides
    (a benchmark measures the committed defaults on an embedded Ray)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PRIVACY_RAY_") and k not in ("RAY_ADDRESS", "CONFIG_PATH")
    }
    env.update(BENCH_ENV)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def run_json(
    cmd: Sequence[str], out_path: Path, timeout_s: float, label: str
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Run ``cmd`` (which writes JSON to ``out_path``) in its own process group.

    Returns ``(result or None, facts)``; facts hold the wall time, the load average before and
    after, and on failure the exit status and the tail of stderr. A run past ``timeout_s`` is
    killed with its whole process group (the Ray processes it started included).
    """
    facts: dict[str, Any] = {"label": label, "load_average_before": load_average()}
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd),
        cwd=ROOT,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        facts["error"] = f"timed out after {timeout_s:.0f}s"
    facts["wall_s"] = round(time.perf_counter() - started, 1)
    facts["load_average_after"] = load_average()
    facts["returncode"] = proc.returncode
    result = None
    if proc.returncode == 0 and out_path.is_file():
        try:
            result = json.loads(out_path.read_text(encoding="utf-8"))
        except ValueError as e:
            facts["error"] = f"unreadable JSON in {out_path}: {e}"
    elif "error" not in facts:
        facts["error"] = f"exit status {proc.returncode}"
    if result is None:
        tail = (stderr or stdout or "").strip().splitlines()[-15:]
        facts["stderr_tail"] = tail
    return result, facts
