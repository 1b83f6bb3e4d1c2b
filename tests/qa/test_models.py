"""Finding the GGUF model files, and refusing a default model that is not the genuine file."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa import models
from qa.config import Settings
from qa.errors import ModelFileError


def test_smollm2_is_found_in_its_package() -> None:
    path = models.resolve_model_path(models.SMOLLM2, Path("unused"))
    assert path.name == models.SMOLLM2_FILE
    assert path.stat().st_size > 50_000_000


def test_any_gguf_by_path(tmp_path: Path) -> None:
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    assert models.resolve_model_path(str(gguf), tmp_path) == gguf
    with pytest.raises(ModelFileError, match="No model file"):
        models.resolve_model_path(str(tmp_path / "absent.gguf"), tmp_path)
    with pytest.raises(ModelFileError, match="Unknown model 'gpt-9'"):
        models.resolve_model_path("gpt-9", tmp_path)


def test_all_qwen_parts_are_installed() -> None:
    parts = models.qwen_part_paths()
    assert len(parts) == 22
    assert sum(p.stat().st_size for p in parts) == models.QWEN_SIZE


def test_tampered_default_model_is_refused_and_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_parts = []
    for i in range(3):
        part = tmp_path / f"part{i}.bin"
        part.write_bytes(b"x" * 1000)
        fake_parts.append(part)
    monkeypatch.setattr(models, "qwen_part_paths", lambda: fake_parts)
    cache = tmp_path / "cache"
    with pytest.raises(ModelFileError, match="not the genuine file"):
        models.assemble_qwen(cache)
    assert list(cache.iterdir()) == []


@pytest.mark.model  # assembles and hashes the real Qwen file
def test_verified_default_model_is_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = Settings().model_cache_dir
    target = models.assemble_qwen(cache)
    assert target.stat().st_size == models.QWEN_SIZE
    monkeypatch.setattr(models, "qwen_part_paths", lambda: pytest.fail("reassembled"))
    assert models.assemble_qwen(cache) == target
