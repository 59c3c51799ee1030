"""What machine and software a benchmark ran on, so a figure can be traced to where it came from.

Package versions come from installed-distribution metadata (importlib.metadata), never by importing the
package: asking for torch's version must not load torch into the runtime process.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
from importlib import metadata

PACKAGES: tuple[str, ...] = (
    "handstream",
    "numpy",
    "opencv-python",
    "opencv-python-headless",
    "onnxruntime",
    "onnxruntime-gpu",
    "torch",
    "tensorrt",
    "matplotlib",
)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of the named distributions; absent ones are left out."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_total_mb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def gpu_names() -> list[str]:
    """NVIDIA GPUs as nvidia-smi names them; empty when there is none (or no driver)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [ln.strip() for ln in out.stdout.splitlines() if ln.strip()] if out.returncode == 0 else []


def usable_cores() -> int:
    """Cores this process may run on (affinity), which is what matters on a shared VM."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (getrusage; Linux reports kB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _loadavg() -> float | None:
    """1-minute load average when the run started: above the core count, other work competed for them."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def machine_info() -> dict:
    """CPU, cores, memory, GPUs, OS, Python and package versions, as one JSON-ready dict."""
    gpus = gpu_names()
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "memory_total_mb": memory_total_mb(),
        "gpus": gpus,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_1m": _loadavg(),
        "versions": package_versions(),
    }


def describe(info: dict) -> str:
    """One line for a table caption: '2-core AMD EPYC ..., no GPU, Linux ..., Python 3.11.7'."""
    gpu = ", ".join(info.get("gpus") or []) or "no GPU"
    load = info.get("load_average_1m")
    load_txt = f", load average {load:.1f} at start" if isinstance(load, (int, float)) else ""
    return (
        f"{info.get('usable_cores')}-core {info.get('cpu_model')}, {gpu}, "
        f"{info.get('platform')}, Python {info.get('python')}{load_txt}"
    )
