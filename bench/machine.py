"""What a benchmark ran on: processor (and the vector unit torch uses), cores, torch, device, GPU."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from vaepipe.core.runtime import ISA_ENVS, cpu_class  # noqa: E402  (AMX, AVX-512, AVX2: what torch's kernels run on)


LIBRARY_ISA_ENVS = ("MKL_ENABLE_INSTRUCTIONS", "OPENBLAS_CORETYPE", "NUMBA_CPU_NAME")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else ():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return platform.processor()


def describe(device: torch.device) -> dict:
    info = {"cpu": cpu_model(), "cpu_class": cpu_class(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "device": str(device), "date": datetime.date.today().isoformat()}
    # Set, these lower the vector unit torch and oneDNN (and numpy's BLAS, numba) use below the CPU's own: an
    # approximation of a smaller CPU.
    lowered = {name: os.environ[name] for name in (*ISA_ENVS, *LIBRARY_ISA_ENVS) if os.environ.get(name)}
    if lowered:
        info["isa_lowered_by"] = lowered
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info
