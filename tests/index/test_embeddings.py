"""The embedding model: OpenVINO and torch give the same vectors, questions are embedded like
documents, and a damaged model or converted copy is caught."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from index.chunking import chunk_article
from index.embeddings import (
    PACKAGED_SHA256,
    WARM_QUESTION_TOKENS,
    Embedder,
    OpenVinoEngine,
    TorchEngine,
    check_packaged_model,
    file_sha256,
    open_embedder,
    packaged_model_path,
)
from index.errors import ModelNotFoundError
from index.sources import load_articles
from tests.conftest import ROOT, SAMPLE_ARTICLES
from tests.support.remembered import RememberingEngine, remembering


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    """The default backend as the app opens it (not the session's remembering one)."""
    return open_embedder()


@pytest.fixture(scope="module")
def torch_embedder() -> Embedder:
    return open_embedder(backend="torch")


@pytest.fixture(scope="module")
def chunk_texts(embedder: Embedder) -> list[str]:
    articles = load_articles(SAMPLE_ARTICLES).articles[:6]
    count = embedder.count_tokens
    chunks = [
        c.text
        for a in articles
        for c in chunk_article(a, max_tokens=128, overlap_tokens=24, count_tokens=count)
    ]
    return [*chunks[:96], " ".join(["harbour"] * 400)]  # the last is longer than the model reads


def test_the_default_backend_is_openvino(embedder: Embedder) -> None:
    assert isinstance(embedder.engine, OpenVinoEngine)
    assert embedder.dimension == 384
    assert embedder.max_tokens == 254


def test_openvino_and_torch_give_the_same_vectors(
    embedder: Embedder, torch_embedder: Embedder, chunk_texts: list[str]
) -> None:
    assert isinstance(torch_embedder.engine, TorchEngine)
    assert len(chunk_texts) > 40
    fast, reference = embedder.encode(chunk_texts), torch_embedder.encode(chunk_texts)
    cosines = (fast * reference).sum(axis=1)
    assert cosines.min() > 0.9995, cosines.min()
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    for text in chunk_texts[:20]:
        assert embedder.count_tokens(text) == torch_embedder.count_tokens(text)


@pytest.mark.parametrize("backend", ["openvino", "torch"])
def test_a_query_gets_the_vector_its_text_gets_as_a_document(
    backend: str, embedder: Embedder, torch_embedder: Embedder
) -> None:
    model = embedder if backend == "openvino" else torch_embedder
    threads = torch.get_num_threads()
    text = "When did the harbour bridge open?"
    query = np.asarray(model.embed_query(text))
    document = np.asarray(model.embed_documents([text])[0])
    assert float(np.dot(query, document)) > 0.9999
    assert abs(float(np.linalg.norm(query)) - 1.0) < 1e-5
    # The torch query thread's single core is its own: the caller's setting is untouched.
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("backend", ["openvino", "torch"])
def test_warm_up_runs_the_model_at_the_largest_shapes_it_prepares_for(
    backend: str, embedder: Embedder, torch_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = embedder if backend == "openvino" else torch_embedder
    seen: list[tuple[str, int, int]] = []
    encode, encode_query = model.engine.encode, model.engine.encode_query

    def spy_encode(texts: list[str], batch_size: int) -> np.ndarray:
        seen.append(("batch", len(texts), max(map(model.count_tokens, texts))))
        return encode(texts, batch_size)

    def spy_encode_query(text: str) -> np.ndarray:
        seen.append(("question", 1, model.count_tokens(text)))
        return encode_query(text)

    monkeypatch.setattr(model.engine, "encode", spy_encode)
    monkeypatch.setattr(model.engine, "encode_query", spy_encode_query)
    model.warm_up(128)
    # (torch runs a question through its batch path too, on a thread of its own)
    assert seen[:2] == [("batch", model.batch_size, 128), ("question", 1, WARM_QUESTION_TOKENS)]


def test_answering_a_question_never_imports_torch(embedder: Embedder) -> None:
    # The converted model is in the default cache (the `embedder` fixture made sure of it).
    code = (
        "import sys\n"
        "from index.embeddings import open_embedder\n"
        "e = open_embedder()\n"
        "assert len(e.embed_query('Who opened the bridge?')) == 384\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') "
        "if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def copy_of_packaged_model(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(packaged_model_path(), target)
    return target


def test_a_modified_or_missing_model_file_is_caught(tmp_path: Path) -> None:
    model = copy_of_packaged_model(tmp_path)
    check_packaged_model(model)  # an exact copy passes
    weights = model / "model.safetensors"
    original = weights.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelNotFoundError, match=r"model\.safetensors.*does not match.*Reinstall"):
        check_packaged_model(model)
    weights.write_bytes(original)
    (model / "tokenizer.json").unlink()
    with pytest.raises(ModelNotFoundError, match=r"tokenizer\.json is missing.*Reinstall"):
        check_packaged_model(model)
    assert set(PACKAGED_SHA256) >= {"model.safetensors", "tokenizer.json", "modules.json"}


def test_a_damaged_converted_model_is_converted_again(tmp_path: Path) -> None:
    model = copy_of_packaged_model(tmp_path)
    cache = tmp_path / "cache"
    first = open_embedder(model, backend="openvino", cache_dir=cache)
    vector = np.asarray(first.embed_query("Ferry fares rose in May."))
    (converted,) = (cache / "embeddings").iterdir()
    digests = json.loads((converted / "sha256.json").read_text(encoding="utf-8"))
    assert set(digests) == {"model.xml", "model.bin"}
    with (converted / "model.bin").open("r+b") as f:
        f.seek(4096)
        f.write(b"\xff" * 64)
    again = open_embedder(model, backend="openvino", cache_dir=cache)
    assert isinstance(again.engine, OpenVinoEngine)
    assert float(np.dot(vector, again.embed_query("Ferry fares rose in May."))) > 0.9999
    rewritten = json.loads((converted / "sha256.json").read_text(encoding="utf-8"))
    assert rewritten["model.bin"] == file_sha256(converted / "model.bin")


def test_a_model_openvino_cannot_run_falls_back_to_torch(tmp_path: Path) -> None:
    model = copy_of_packaged_model(tmp_path)
    pooling = model / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text(encoding="utf-8"))
    config.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(config), encoding="utf-8")
    cache = tmp_path / "cache"
    assert isinstance(open_embedder(model, cache_dir=cache).engine, TorchEngine)
    with pytest.raises(ModelNotFoundError, match="CITEQA_EMBEDDING_BACKEND=torch"):
        open_embedder(model, backend="openvino", cache_dir=cache)
    assert not cache.exists()


def test_remembered_vectors_are_the_models_own(embedder: Embedder, chunk_texts: list[str]) -> None:
    # The session's `embedder` (tests/support/remembered.py) runs the model once per text.
    remembered = remembering(embedder)
    engine = remembered.engine
    assert isinstance(engine, RememberingEngine)
    texts = chunk_texts[:40]
    first = remembered.encode([*texts, texts[0]])
    assert engine.computed == 40
    again = remembered.encode(texts[::-1])
    assert engine.computed == 40
    assert np.array_equal(again, first[:40][::-1])
    cosines = (first[:40] * embedder.encode(texts)).sum(axis=1)
    assert cosines.min() > 0.9999, cosines.min()
    assert remembered.encode([]).shape == (0, embedder.dimension)
