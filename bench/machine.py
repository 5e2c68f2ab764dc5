"""What a benchmark ran on: processor (and its widest vector unit), cores, torch, device, GPU."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

import torch


def cpu_model_and_flags() -> tuple[str, set[str]]:
    model, flags = platform.processor(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not flags:
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return model, flags


def cpu_class(flags: set[str]) -> str:
    """AMX, AVX-512, AVX2 or older: what decides the speed of the CPU's matrix multiplies and bf16."""
    if "amx_tile" in flags:
        return "AMX"
    if "avx512f" in flags:
        return "AVX-512"
    return "AVX2" if "avx2" in flags else "pre-AVX2"


def describe(device: torch.device) -> dict:
    model, flags = cpu_model_and_flags()
    info = {"cpu": model, "cpu_class": cpu_class(flags), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "device": str(device), "date": datetime.date.today().isoformat()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info
