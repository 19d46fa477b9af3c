"""What machine and software a trace was captured on (written next to the CSV as .env.json)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

NVIDIA_SMI_FIELDS = ("name", "driver_version", "clocks.sm", "clocks.mem", "clocks.max.sm",
                     "clocks.max.mem", "power.limit", "power.draw", "temperature.gpu", "utilization.gpu")


def _run(cmd: list[str], timeout_s: float = 10.0) -> str | None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _number_or_text(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def nvidia_smi() -> list[dict] | None:
    """One dict per GPU from ``nvidia-smi --query-gpu`` (MHz, W, °C, %), or None without nvidia-smi."""
    for fields in (NVIDIA_SMI_FIELDS, NVIDIA_SMI_FIELDS[:7]):  # the short list if a field is unknown
        out = _run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"])
        if out is not None:
            rows = [[v.strip() for v in line.split(",")] for line in out.strip().splitlines()]
            return [{f: _number_or_text(v) for f, v in zip(fields, row)} for row in rows if len(row) == len(fields)]
    return None


class ClockSampler:
    """Polls nvidia-smi in a background thread so the env records the clocks seen *during* the run."""

    def __init__(self, period_s: float = 3.0):
        self.period_s = period_s
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        if nvidia_smi() is not None:
            self._thread.start()
        return self

    def _loop(self):
        while not self._stop.wait(self.period_s):
            rows = nvidia_smi()
            if rows:
                self.samples.append({"t_s": round(time.monotonic() - self._t0, 1), **rows[0]})

    def stop(self) -> list[dict]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        return self.samples


def command_line() -> str:
    """The capture command as run (argv after the module name), shell-quoted."""
    return shlex.join([sys.executable, "-m", "simulator.capture", *sys.argv[1:]])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def last_level_cache_bytes(default: int = 32 * 2**20) -> int:
    """Largest CPU cache size from sysfs (the L3 on x86), or ``default``."""
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        match = re.fullmatch(r"(\d+)([KMG]?)", path.read_text().strip())
        if match:
            sizes.append(int(match[1]) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[match[2]])
    return max(sizes, default=default)


def load_average() -> list[float] | None:
    """1-, 5- and 15-minute load averages: busy neighbours distort CPU timings."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def memory_total_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def git_commit(repo: Path) -> dict:
    commit = _run(["git", "-C", str(repo), "rev-parse", "HEAD"])
    status = _run(["git", "-C", str(repo), "status", "--porcelain"])
    return {"git_commit": commit.strip() if commit else None,
            "git_dirty": None if status is None else bool(status.strip())}


def gpu_tag(name: str) -> str:
    """Short file-name tag from a device name: 'NVIDIA H200' -> 'h200'."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return re.sub(r"^nvidia-", "", slug)[:32] or "gpu"


def collect(suite: str, device: str) -> dict:
    """Machine, software and run facts; torch must be importable."""
    import numpy
    import torch

    env = {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "suite": suite,
        "device": device,
        "command": command_line(),
        "hostname": socket.gethostname(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "torch_version": torch.__version__,
        "torch_cuda_version": torch.version.cuda,
        "numpy_version": numpy.__version__,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_last_level_cache_bytes": last_level_cache_bytes(),
        "memory_total_bytes": memory_total_bytes(),
        "load_average_start": load_average(),
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "mkl_available": torch.backends.mkl.is_available(),
        "mkldnn_available": torch.backends.mkldnn.is_available(),
        **git_commit(Path(__file__).resolve().parents[2]),
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update({
            "gpu_name": props.name,
            "gpu_compute_capability": f"{props.major}.{props.minor}",
            "gpu_sm_count": props.multi_processor_count,
            "gpu_memory_total_bytes": props.total_memory,
            "gpu_l2_cache_bytes": getattr(props, "L2_cache_size", None),
            "cudnn_version": torch.backends.cudnn.version(),
            "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cusparselt_version": _cusparselt_version(torch),
            "triton_version": _module_version("triton"),
        })
    smi = nvidia_smi()
    env["nvidia_smi_before"] = smi
    env["driver_version"] = smi[0]["driver_version"] if smi else None
    return env


def _cusparselt_version(torch):
    try:
        return torch.backends.cusparselt.version()
    except Exception:  # noqa: BLE001 - absent or not built with it
        return None


def _module_version(name: str):
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
