"""Where and how reproducibly the stages compute: device choice, seeded generators, deterministic kernels."""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import sys

import torch
from tqdm import tqdm

from vaepipe.core.errors import PipelineError


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PipelineError("params.yaml: `device` is cuda but no CUDA GPU is available; use auto or cpu")
    return torch.device(name)


def has_fast_bf16(device: torch.device) -> bool:
    """Whether the device multiplies bfloat16 matrices in hardware: AVX-512 BF16 or AMX on a CPU, compute
    capability 8 (Ampere) or newer on a GPU. Elsewhere bf16 is emulated, slower than float32. A CPU whose
    kernels are lowered to AVX2 (ATEN_CPU_CAPABILITY=avx2, as when approximating an AVX2 machine) has it no more."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    return cpu_class() in ("AMX", "AVX-512") and (torch.cpu._is_avx512_bf16_supported()
                                                  or torch.cpu._is_amx_tile_supported())


def resolved_precision(precision: str, device: torch.device) -> str:
    """fp32 or bf16 for a precision setting (`train.precision`, `evaluate.precision`, `judge.precision`:
    fp32 | bf16 | auto) on `device`: auto is bf16 where the device has it fast."""
    if precision == "auto":
        return "bf16" if has_fast_bf16(device) else "fp32"
    return precision


def cpu_class() -> str:
    """The vector instructions torch's CPU kernels run on: AMX, AVX-512, AVX2, or torch's name for a lesser
    class. ATEN_CPU_CAPABILITY=avx2 lowers it as it lowers the kernels."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability == "AVX512":
        return "AMX" if torch.cpu._is_amx_tile_supported() else "AVX-512"
    return capability


def provenance(device: torch.device, precision: str | None = None) -> dict[str, str]:
    """What a run computed on, recorded beside its metrics (other hardware computes other floats, and `dvc metrics
    diff` then shows why): the device, its hardware (the CPU class or the GPU's name), the torch version and, for a
    stage with a precision setting, what it resolved to."""
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_class()
    record = {"device": device.type, "hardware": hardware, "torch": str(torch.__version__)}
    if precision is not None:
        record["precision"] = resolved_precision(precision, device)
    return record


def compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of the matrix multiplies for a precision setting on `device` (see resolved_precision)."""
    return torch.bfloat16 if resolved_precision(precision, device) == "bf16" else torch.float32


def autocast(dtype: torch.dtype, device: torch.device) -> torch.autocast:
    """A context in which layers compute in `dtype`: bf16 autocast on float32 weights, or nothing for float32."""
    return torch.autocast(device.type, torch.bfloat16, enabled=dtype == torch.bfloat16)


# Compiling costs a stage ~20 s from a cold cache (~5 s warm) and saves a few microseconds an image pass
# (bench/results-cpu-no-compiler.json: 1.76 s against 2.07 s an epoch of 50,000): a run that makes fewer image
# passes than this (images x epochs in training, images x samples in a scoring call) runs eagerly, as compiling would
# cost it more than it saves. The default run's training (1.6 million) and test-set NLL (10 million) make more;
# compress and anomaly, scoring up to 200,000 a call, run eagerly.
COMPILE_MIN_IMAGE_PASSES = 500_000
# auto (by COMPILE_MIN_IMAGE_PASSES) | always | never: what `compiling_if_worth_it` does.
COMPILE_ENV = "VAEPIPE_COMPILE"
_compile_enabled = True


@contextlib.contextmanager
def compiling_if_worth_it(image_passes: int):
    """Inside, `compiled` functions compile only when `image_passes` reaches COMPILE_MIN_IMAGE_PASSES, else they
    run as written; the environment's VAEPIPE_COMPILE=always or never decides instead."""
    global _compile_enabled
    choice = os.environ.get(COMPILE_ENV, "auto")
    if choice not in ("auto", "always", "never"):
        raise PipelineError(f"{COMPILE_ENV} is {choice!r}; use auto, always or never")
    kept = _compile_enabled
    _compile_enabled = choice == "always" or (choice == "auto" and image_passes >= COMPILE_MIN_IMAGE_PASSES)
    try:
        yield
    finally:
        _compile_enabled = kept


def compiled(*, dynamic: bool, recompile_limit: int = 8):
    """`torch.compile` keeping up to `recompile_limit` graphs of the function (one per input shape when not
    `dynamic`), or the function as written where no C++ compiler exists (see `cpp_compiler_found`) or inside a
    `compiling_if_worth_it` that found compiling not worth it. Decided at the first compiled call, so importing a
    module costs no compiler lookup. The plain function stays `.__wrapped__`."""
    def decorate(function):
        chosen = None

        @functools.wraps(function)
        def run(*args, **kwargs):
            nonlocal chosen
            # Traced inside another compiled function (which inlines this one), or compiling is off here.
            if torch.compiler.is_compiling() or not _compile_enabled:
                return function(*args, **kwargs)
            if chosen is None:
                _own_kernel_cache_for_a_lowered_isa()  # before the compiler lookup, which fixes the cache's place
                chosen = _compile(function, dynamic, recompile_limit) if cpp_compiler_found() else function
            return chosen(*args, **kwargs)
        return run
    return decorate


def _compile(function, dynamic: bool, recompile_limit: int):
    # Torch before 2.14 takes no per-function limit: there the process-wide one is raised to it.
    if "recompile_limit" in inspect.signature(torch.compile).parameters:
        return torch.compile(function, dynamic=dynamic, recompile_limit=recompile_limit)
    from torch._dynamo import config

    config.recompile_limit = max(config.recompile_limit, recompile_limit)
    return torch.compile(function, dynamic=dynamic)


# Lower the vector instructions torch and oneDNN use (e.g. to approximate an AVX2 CPU on a bigger one).
ISA_ENVS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")


def _own_kernel_cache_for_a_lowered_isa() -> None:
    """TorchInductor's kernel cache on disk does not tell kernels built under a lowered ISA (ISA_ENVS) from the
    others: reused by a run without it, they computed wrong numbers (a validation -ELBO of 639 nats instead of 95).
    Such a run keeps its kernels apart, in a cache of its own, unless TORCHINDUCTOR_CACHE_DIR names another place
    than the default (which importing TorchDynamo writes there)."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    lowered = [os.environ[name].lower() for name in ISA_ENVS if os.environ.get(name)]
    default = os.path.abspath(default_cache_dir())
    if lowered and os.path.abspath(os.environ.get("TORCHINDUCTOR_CACHE_DIR", default)) == default:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(default, "isa-" + "-".join(lowered))


@functools.cache
def cpp_compiler_found() -> bool:
    """Whether TorchInductor finds the C++ compiler it builds kernels with (`$CXX`, else g++), by its own
    search. Slim images and many laptops have none; without one everything runs eagerly, slower, and its
    floats may differ from a compiled run's in the last bits. Says so once, on stderr."""
    from torch._inductor import cpp_builder, exc

    try:
        cpp_builder.get_cpp_compiler()
    except exc.InvalidCxxCompiler:
        compiler = os.environ.get("CXX", "g++")
        # tqdm.write: on a line of its own even when a progress bar is on screen (the first call is mid-epoch).
        tqdm.write(f"notice: no C++ compiler ({compiler}) found, so torch.compile is off: training and scoring "
                   "run eagerly (slower, and results may differ in the last bits)", file=sys.stderr)
        return False
    return True


def make_deterministic(seed: int) -> None:
    """Same seed, same machine, same bytes: seeded RNGs and deterministic kernels only. Call it first, before
    any tensor work: it also flushes denormal floats to zero, which only threads started after it inherit."""
    # cuBLAS needs this set before its first use to be deterministic.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # Adam's moments of weights that never get a gradient (those of always-blank border pixels) decay into
    # denormals within two epochs; arithmetic on them is ~100x slower on x86 and made a CPU epoch 1.6x longer.
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def generator(device: torch.device, seed: int) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g
