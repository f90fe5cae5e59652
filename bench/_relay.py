"""Bench helpers: start a throwaway ``nexus-server`` and watch a process tree's memory/CPU.

The relay runs in its own session (process group), so a Ctrl-C in the terminal reaches the
bench, which then stops the relay itself: SIGTERM to the group it started, SIGKILL after a
grace period. ``stop`` is idempotent and also registered with ``atexit``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def default_server_exe() -> str:
    for candidate in (
        Path(sys.executable).parent / "nexus-server",
        REPO / ".venv" / "bin" / "nexus-server",
    ):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("nexus-server")
    if found is None:
        raise SystemExit("nexus-server not found: run from the project's .venv")
    return found


class Relay:
    """A ``nexus-server`` subprocess on a free loopback port with a fresh data directory."""

    def __init__(
        self,
        exe: str | None = None,
        *,
        no_rate_limits: bool = True,
        extra_args: list[str] | None = None,
        keep_data: bool = False,
    ) -> None:
        self.exe = exe or default_server_exe()
        self.no_rate_limits = no_rate_limits
        self.extra_args = list(extra_args or [])
        self.keep_data = keep_data
        self.port = 0
        self.data_dir: Path | None = None
        self.log_path: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.argv: list[str] = []
        self.notes: list[str] = []
        self._log_file: object | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _help_text(self) -> str:
        try:
            out = subprocess.run(
                [self.exe, "--help"], capture_output=True, timeout=60, check=False, text=True
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"{self.exe} --help failed: {exc}") from exc
        if out.returncode != 0:
            raise RuntimeError(
                f"{self.exe} --help exited {out.returncode}:\n{(out.stderr or out.stdout)[-2000:]}"
            )
        return out.stdout + out.stderr

    def start(self, timeout: float = 90.0) -> str:
        help_text = self._help_text()
        self.port = free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="nexus-bench-"))
        self.log_path = self.data_dir / "relay.log"
        argv = [self.exe, "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--data", str(self.data_dir / "data")]
        if self.no_rate_limits:
            if "--no-rate-limits" in help_text:
                argv.append("--no-rate-limits")
            else:
                self.notes.append("relay has no --no-rate-limits flag: 429s will be honoured")
        argv += self.extra_args
        self.argv = argv
        log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._log_file = log_file
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(self.data_dir),
        )
        atexit.register(self.stop)
        self._wait_ready(timeout)
        return self.base_url

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"{self.base_url}/api/v10/gateway"
        last = "no answer"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"relay exited with code {self.proc.returncode} before answering:\n"
                        + self.log_tail()
                    )
                try:
                    r = client.get(url)
                    if r.status_code == 200:
                        return
                    last = f"HTTP {r.status_code}: {r.text[:200]}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                time.sleep(0.1)
        raise RuntimeError(
            f"relay did not answer GET {url} within {timeout:.0f}s ({last}):\n" + self.log_tail()
        )

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no relay log)"
        with open(self.log_path, "rb") as f:
            tail = deque(f, maxlen=lines)
        return b"".join(tail).decode("utf-8", "replace")

    def stop(self, grace: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            # The relay leads its own process group (start_new_session): signal that group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.notes.append(f"relay ignored SIGTERM for {grace:.0f}s: killed")
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5.0)
        if self._log_file is not None:
            with contextlib.suppress(Exception):
                self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None
        if self.data_dir is not None and not self.keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None


def find_listener_pid(port: int) -> int | None:
    """The pid listening on a local TCP port, if this user may see it."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                return conn.pid
    return None


class TreeSampler(threading.Thread):
    """Samples the RSS of a process and all its descendants every ``interval`` seconds.

    ``peak`` is the high-water mark since start, ``window_peak`` since ``reset_window``.
    ``cpu_seconds`` adds user+system time over the tree (processes that already exited
    are not counted)."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(name=f"rss-sampler-{pid}", daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.window_peak = 0
        self.last = 0
        self.alive = True
        self._stop_event = threading.Event()
        self._procs: dict[int, psutil.Process] = {}
        self._lock = threading.Lock()
        self._refresh_at = 0.0

    def _tree(self) -> list[psutil.Process]:
        now = time.monotonic()
        if now >= self._refresh_at or not self._procs:
            self._refresh_at = now + 1.0
            try:
                root = self._procs.get(self.pid) or psutil.Process(self.pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                self.alive = False
                return []
            # keep Process objects so cpu/rss stay cheap to read
            self._procs = {p.pid: self._procs.get(p.pid, p) for p in procs}
        return list(self._procs.values())

    def rss(self) -> int:
        total = 0
        with self._lock:
            for p in self._tree():
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        total = 0.0
        with self._lock:
            for p in self._tree():
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    total += t.user + t.system
        return total

    def reset_window(self) -> None:
        self.window_peak = self.last

    def run(self) -> None:
        while not self._stop_event.is_set():
            value = self.rss()
            if value:
                self.last = value
                self.peak = max(self.peak, value)
                self.window_peak = max(self.window_peak, value)
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
