"""CPU features: what this CPU has, and the llama.cpp build that runs on it.

The install compiles llama.cpp from source. Its default (`GGML_NATIVE=ON`, `-march=native`) turns
on every instruction set the compiler finds, AMX included, and llama.cpp's AMX path crashes on
Intel CPUs that have it (a general protection fault at the first decode). So the build is never
native: `cmake_args` turns each x86 instruction set on exactly when the CPU lists it, and AMX
always off. The same list of flags always gives the same binary, so `build_key` names the folder
that caches the wheel: a cache moved to a CPU with other features finds no wheel under its key and
compiles a new one, instead of running instructions its CPU lacks.

Standard library only: the Makefile runs this file with the system Python before any install
(`python3 qa/cpu.py cmake-args|build-key`).
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

LLAMA_CPP_VERSION = "0.3.36"
# Always passed: no multimodal helper library, never `-march=native`, no AMX kernels.
BASE_ARGS = ("-DLLAVA_BUILD=OFF", "-DGGML_NATIVE=OFF")
NEVER = ("GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16")
# Each llama.cpp x86 option and the /proc/cpuinfo flags it needs (all of them).
X86_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "GGML_SSE42": ("sse4_2",),
    "GGML_AVX": ("avx",),
    "GGML_AVX2": ("avx2",),
    "GGML_AVX_VNNI": ("avx_vnni",),
    "GGML_BMI2": ("bmi2",),
    "GGML_FMA": ("fma",),
    "GGML_F16C": ("f16c",),
    # llama.cpp's AVX512 option compiles with -mavx512f -mavx512cd -mavx512vl -mavx512dq -mavx512bw.
    "GGML_AVX512": ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"),
    "GGML_AVX512_VBMI": ("avx512f", "avx512vbmi"),
    "GGML_AVX512_VNNI": ("avx512f", "avx512_vnni"),
    "GGML_AVX512_BF16": ("avx512f", "avx512_bf16"),
}
# The names llama.cpp's `llama_print_system_info()` gives the same features.
SYSTEM_INFO_NAMES: Mapping[str, str] = {
    "SSE3": "GGML_SSE42",  # printed for any SSE3+ build; checked through SSE4.2
    "AVX": "GGML_AVX",
    "AVX2": "GGML_AVX2",
    "AVX_VNNI": "GGML_AVX_VNNI",
    "BMI2": "GGML_BMI2",
    "FMA": "GGML_FMA",
    "F16C": "GGML_F16C",
    "AVX512": "GGML_AVX512",
    "AVX512_VBMI": "GGML_AVX512_VBMI",
    "AVX512_VNNI": "GGML_AVX512_VNNI",
    "AVX512_BF16": "GGML_AVX512_BF16",
    "AMX_INT8": "GGML_AMX_INT8",
}
_X86 = ("x86_64", "amd64", "i386", "i686")


def read_cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (empty where there is no /proc/cpuinfo)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def read_cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name, or the machine type where Linux does not say."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return found.group(1).strip() if found else platform.machine() or "unknown CPU"


def enabled_options(cpu_flags: Iterable[str]) -> tuple[str, ...]:
    """The llama.cpp x86 options a CPU with `cpu_flags` can run, in a fixed order."""
    have = set(cpu_flags)
    return tuple(name for name, needs in X86_OPTIONS.items() if have.issuperset(needs))


def cmake_args(cpu_flags: Iterable[str], machine: str | None = None) -> tuple[str, ...]:
    """CMake arguments that build llama.cpp for a CPU with `cpu_flags`: every x86 option set
    explicitly ON or OFF (llama.cpp's defaults follow GGML_NATIVE), AMX always OFF.

    Other architectures get the compiler's baseline for that architecture (no -march=native).
    """
    if (machine or platform.machine()).lower() not in _X86:
        return BASE_ARGS
    on = set(enabled_options(cpu_flags))
    options = tuple(f"-D{name}={'ON' if name in on else 'OFF'}" for name in X86_OPTIONS)
    return BASE_ARGS + options + tuple(f"-D{name}=OFF" for name in NEVER)


def build_key(args: Sequence[str], machine: str | None = None) -> str:
    """A short name for one build: the llama.cpp version, the machine type and the flags."""
    text = " ".join((LLAMA_CPP_VERSION, (machine or platform.machine()).lower(), *args))
    return f"{LLAMA_CPP_VERSION}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def parse_system_info(info: str) -> tuple[str, ...]:
    """The features `llama_print_system_info()` reports as compiled in (`NAME = 1`), in its
    order."""
    return tuple(re.findall(r"\b([A-Z][A-Z0-9_]*) = 1\b", info))


def build_mismatch(system_info: str, cpu_flags: Iterable[str]) -> list[str]:
    """Features the llama.cpp build uses that this CPU lacks (AMX counts as lacking: its path
    crashes); empty when the build can run here."""
    flags = set(cpu_flags)
    built = parse_system_info(system_info)
    problems = []
    for name in sorted(built):
        option = SYSTEM_INFO_NAMES.get(name)
        if option is None or name == "SSE3":
            continue
        if option in NEVER or (flags and not flags.issuperset(X86_OPTIONS[option])):
            problems.append(name)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Print the CMake arguments, or the wheel cache key, for this machine's CPU."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("cmake-args", "build-key", "features", "version"))
    parser.add_argument("--cpuinfo", type=Path, default=Path("/proc/cpuinfo"))
    parser.add_argument("--machine", default=None, help="machine type (default: this one)")
    args = parser.parse_args(argv)
    flags = read_cpu_flags(args.cpuinfo)
    cmake = cmake_args(flags, args.machine)
    if args.what == "version":
        print(LLAMA_CPP_VERSION)
    elif args.what == "cmake-args":
        print(" ".join(cmake))
    elif args.what == "build-key":
        print(build_key(cmake, args.machine))
    else:
        print(" ".join(enabled_options(flags)) or "(baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
