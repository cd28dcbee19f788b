"""Provenance: what machine, software and settings produced a result.

    archbench env          # prints describe(collect())
"""
from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from archbench.instruments import flags


def git_info(path: Path | None = None) -> dict[str, Any]:
    """The commit, its committer date (ISO 8601) and the dirty flag of the git checkout holding ``path``
    (archbench's own by default); ``archbench history`` orders runs by them."""
    path = path or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return {"commit": None, "dirty": None, "date": None}
        status = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        )
        date = subprocess.run(
            ["git", "-C", str(path), "log", "-1", "--format=%cI"], capture_output=True, text=True, timeout=5
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip()),
                "date": date.stdout.strip() or None}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "date": None}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nvml_info() -> list[dict[str, Any]] | str:
    """One dict per NVIDIA GPU (name, driver, memory, clocks), or the reason there is none."""
    try:
        import pynvml
    except ImportError:
        return "no NVIDIA GPU (nvidia-ml-py not installed)"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return "no NVIDIA GPU"
    try:
        gpus = []
        driver = pynvml.nvmlSystemGetDriverVersion()
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            gpus.append({
                "index": i,
                "name": pynvml.nvmlDeviceGetName(h),
                "driver": driver,
                "memory_total": int(mem.total),
                "sm_clock_max_mhz": pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM),
                "mem_clock_max_mhz": pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_MEM),
            })
        return gpus or "no NVIDIA GPU"
    except pynvml.NVMLError as exc:
        return f"no NVIDIA GPU readable ({exc})"
    finally:
        pynvml.nvmlShutdown()


def collect() -> dict[str, Any]:
    from archbench import __version__

    cuda = torch.cuda.is_available()
    return {
        "archbench": __version__,
        "git": git_info(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cuda_available": cuda,
        "cuda_device": torch.cuda.get_device_name(0) if cuda else None,
        "gpus": nvml_info(),
        "flags": flags.snapshot(),
    }


def describe(info: dict[str, Any]) -> str:
    """A paste-able, one-fact-a-line description."""
    lines = []
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = "; ".join(", ".join(f"{k}={v}" for k, v in gpu.items()) for gpu in value)
        lines.append(f"{key:>14}: {value}")
    return "\n".join(lines)
