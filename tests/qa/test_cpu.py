"""The llama.cpp build follows the CPU it is installed on: flags from the CPU's features, never
AMX, a wheel cache key per set of flags, and the installed build checked against this CPU."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from qa import cpu
from qa.supervisor import worker_command

ROOT = Path(__file__).resolve().parents[2]
# /proc/cpuinfo flags of three CPU kinds (trimmed to what matters here).
SAPPHIRE_RAPIDS = (
    "fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c bmi1 avx2 bmi2 avx512f avx512dq avx512cd "
    "avx512bw avx512vl avx512vbmi avx512_vnni avx512_bf16 avx_vnni amx_bf16 amx_tile amx_int8"
).split()
GENOA = (
    "fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c bmi1 avx2 bmi2 avx512f avx512dq avx512cd "
    "avx512bw avx512vl avx512vbmi avx512_vnni avx512_bf16"
).split()
HASWELL = "fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c bmi1 avx2 bmi2".split()


def options(args: tuple[str, ...]) -> dict[str, str]:
    pairs = [re.fullmatch(r"-D(\w+)=(\w+)", a) for a in args]
    return {m.group(1): m.group(2) for m in pairs if m is not None}


def test_an_amx_cpu_gets_avx512_but_never_amx_and_never_native() -> None:
    chosen = options(cpu.cmake_args(SAPPHIRE_RAPIDS, "x86_64"))
    assert chosen["GGML_NATIVE"] == "OFF"
    assert chosen["GGML_AMX_TILE"] == chosen["GGML_AMX_INT8"] == chosen["GGML_AMX_BF16"] == "OFF"
    for name in ("AVX2", "FMA", "F16C", "AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16"):
        assert chosen[f"GGML_{name}"] == "ON", name
    assert chosen["GGML_AVX_VNNI"] == "ON"


def test_an_avx2_cpu_gets_no_avx512_and_every_option_is_explicit() -> None:
    chosen = options(cpu.cmake_args(HASWELL, "x86_64"))
    assert chosen["GGML_AVX2"] == chosen["GGML_FMA"] == chosen["GGML_BMI2"] == "ON"
    assert [n for n in cpu.X86_OPTIONS if chosen[n] == "ON"] == list(cpu.enabled_options(HASWELL))
    assert {n for n in cpu.X86_OPTIONS if n.startswith("GGML_AVX512")} <= {
        n for n, v in chosen.items() if v == "OFF"
    }
    assert set(cpu.X86_OPTIONS) | set(cpu.NEVER) | {"LLAVA_BUILD", "GGML_NATIVE"} == set(chosen)


def test_avx512_needs_all_five_of_its_parts() -> None:
    without_bw = [f for f in GENOA if f != "avx512bw"]
    assert "GGML_AVX512" not in cpu.enabled_options(without_bw)
    assert "GGML_AVX512" in cpu.enabled_options(GENOA)


def test_a_cpu_with_no_vector_flags_and_other_architectures_get_the_baseline() -> None:
    assert options(cpu.cmake_args(["fpu", "sse2"], "x86_64"))["GGML_AVX"] == "OFF"
    assert cpu.cmake_args(["asimd", "sve"], "aarch64") == cpu.BASE_ARGS


def test_each_set_of_flags_has_its_own_wheel_folder() -> None:
    keys = {
        cpu.build_key(cpu.cmake_args(flags, "x86_64"), "x86_64")
        for flags in (SAPPHIRE_RAPIDS, GENOA, HASWELL)
    }
    assert len(keys) == 3
    again = cpu.build_key(cpu.cmake_args(list(reversed(GENOA)), "x86_64"), "x86_64")
    assert again in keys  # the same CPU features always find the same wheel


def test_the_makefile_builds_with_these_flags_and_the_pinned_version() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "qa/cpu.py cmake-args" in makefile
    assert "--no-cache-dir" in makefile  # pip's own cache never holds a CPU-specific wheel
    assert "GGML_NATIVE=ON" not in makefile
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"llama-cpp-python=={cpu.LLAMA_CPP_VERSION}"' in pyproject
    printed = subprocess.run(
        [sys.executable, str(ROOT / "qa" / "cpu.py"), "cmake-args", "--machine", "x86_64"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert tuple(printed) == cpu.cmake_args(cpu.read_cpu_flags(), "x86_64")


def test_the_system_info_check_finds_amx_and_missing_features() -> None:
    amx_build = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | OPENMP = 1 |"
    assert cpu.build_mismatch(amx_build, SAPPHIRE_RAPIDS) == ["AMX_INT8"]
    assert cpu.build_mismatch(amx_build, HASWELL) == ["AMX_INT8", "AVX512"]
    assert cpu.build_mismatch("CPU : AVX2 = 1 | AMX_INT8 = 0 |", HASWELL) == []


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads the CPU's flags from Linux")
def test_the_installed_llama_cpp_build_runs_on_this_cpu_without_amx() -> None:
    info = subprocess.run(
        worker_command("--system-info"), capture_output=True, text=True, check=True, timeout=60
    ).stdout
    built = cpu.parse_system_info(info)
    assert "AMX_INT8" not in built
    assert cpu.build_mismatch(info, cpu.read_cpu_flags()) == []
    # Built for this CPU's features, not a baseline: what it lists, the build has.
    for option in cpu.enabled_options(cpu.read_cpu_flags()):
        names = [n for n, o in cpu.SYSTEM_INFO_NAMES.items() if o == option and n != "SSE3"]
        assert all(n in built for n in names), option
