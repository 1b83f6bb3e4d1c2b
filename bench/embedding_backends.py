"""Benchmark: inference backends for the packaged all-MiniLM-L6-v2 embedder, on the same texts.

Backends: torch fp32 (`index.embeddings.open_embedder(backend="torch")`), torch dynamic int8
(`torch.ao.quantization.quantize_dynamic` on the Linear layers), the model exported with
`torch.onnx.export` and run by onnxruntime in fp32 and dynamically quantized to int8
(`onnxruntime.quantization.quantize_dynamic`), the fp32 ONNX model run by OpenVINO with float32
arithmetic forced, and the project's own OpenVINO engine as it ships (`openvino-default`:
`open_embedder(backend="openvino")`, OpenVINO's default precision: bfloat16 on a CPU that has it,
float32 elsewhere). Both int8
backends quantize weights per output channel (per tensor loses more: mean cosine to fp32 about
0.94-0.96 instead of 0.98-0.99). Every backend tokenizes like sentence-transformers (same
tokenizer, truncation at the model's 256 word pieces, batches of 32 texts sorted by length),
mean-pools and L2-normalises.

For each backend: encode rate on real chunks (the dev articles of SQuAD v1.1 and RealTime QA,
chunked by the project's chunker with its default 128 word pieces, 24 overlap), its speed ratio to
torch fp32, the mean cosine of its chunk vectors to fp32's, and article recall@5 (exact cosine
search in numpy; a question is a hit when one of its top 5 chunks comes from a gold article) on a
seeded sample of the dev questions. The chunks are encoded block by block, every backend encoding
each block in turn (the order rotating), so a busy machine slows all backends alike: the speed
ratio is fp32's total time over the backend's, both summed over the same blocks.

Verdict: "adopt" only when the backend is at least 1.5x as fast as torch fp32 and its recall@5 is
no more than 0.01 below fp32's on every dataset.

    python bench/embedding_backends.py [--questions 300] [--seed 7] [--block 256]
        [--backends torch-fp32,torch-int8,onnx-fp32,onnx-int8,openvino-fp32,openvino-default]
        [--eval-dir ../shared/eval] [--cache-dir DIR] [--out bench/results/embedding_backends.json]

The ONNX backends need the `bench` extra (`pip install -e '.[bench]'`); a backend whose packages
are missing or whose model cannot be built is reported as not available, with the reason. Exported
models are cached (by default under the system temp folder). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import platform
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from index.chunking import chunk_article, searchable_text
from index.config import IndexSettings
from index.embeddings import (
    Embedder,
    TorchEngine,
    open_embedder,
    packaged_model_path,
    private_counter,
)
from qa import enforce_offline
from qa.eval.data import EvalQuestion, load_questions
from qa.eval.runner import CorpusSpec, load_corpus

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EVAL_DIR = ROOT.parent / "shared" / "eval"
DEFAULT_CACHE_DIR = Path(tempfile.gettempdir()) / "citeqa-bench" / "onnx"
DATASETS = {"squad": "squad_v1.1", "rtqa": "realtimeqa_2022"}
BACKENDS = (
    "torch-fp32",
    "torch-int8",
    "onnx-fp32",
    "onnx-int8",
    "openvino-fp32",
    "openvino-default",
)
BASELINE = "torch-fp32"
MIN_SPEEDUP = 1.5
MAX_RECALL_DROP = 0.01
TOP_K = 5
INPUTS = ("input_ids", "attention_mask", "token_type_ids")

Vectors = npt.NDArray[np.float32]
Feed = dict[str, npt.NDArray[np.int64]]


class BackendUnavailableError(Exception):
    """A backend cannot run here; the message says why."""


@dataclass
class Backend:
    """A named way to turn texts into unit vectors."""

    name: str
    encode: Callable[[list[str]], Vectors]
    detail: str


@dataclass
class Dataset:
    """One evaluation set: its chunks (texts and article ids) and its sampled questions."""

    name: str
    texts: list[str]
    article_ids: list[str]
    questions: list[EvalQuestion]


@dataclass
class Measured:
    """What one backend produced: vectors per dataset and seconds per block."""

    chunks: dict[str, Vectors] = field(default_factory=dict)
    questions: dict[str, Vectors] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)


# --- backends -------------------------------------------------------------------------------


def torch_fp32() -> Backend:
    embedder = open_embedder(backend="torch")
    return Backend(
        BASELINE,
        lambda texts: np.asarray(embedder.embed_documents(texts), dtype=np.float32),
        f"open_embedder(backend='torch'), batch {embedder.batch_size}",
    )


def openvino_default() -> Backend:
    embedder = open_embedder(backend="openvino")
    return Backend(
        "openvino-default",
        embedder.encode,
        f"open_embedder(backend='openvino'): {embedder.engine.description}, "
        f"batch {embedder.batch_size}",
    )


def load_reference() -> Any:
    """A second copy of the packaged model, for quantizing, exporting and its tokenizer."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(packaged_model_path()), device="cpu", local_files_only=True)


def torch_int8(reference: Any, batch_size: int) -> Backend:
    import torch

    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, but still works in 2.13.
        warnings.simplefilter("ignore")
        model = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            reference,
            {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig},
            dtype=torch.qint8,
        )
    engine = TorchEngine(model)
    embedder = Embedder(engine, "all-MiniLM-L6-v2-int8", private_counter(model), batch_size)
    return Backend(
        "torch-int8",
        lambda texts: np.asarray(embedder.embed_documents(texts), dtype=np.float32),
        f"quantize_dynamic(Linear, qint8 per channel), engine {torch.backends.quantized.engine}",
    )


def model_key() -> str:
    """Names the cached ONNX files after the weights and the exporter's version."""
    import torch

    digest = hashlib.sha256(torch.__version__.encode())
    with (packaged_model_path() / "model.safetensors").open("rb") as weights:
        for block in iter(lambda: weights.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def export_onnx(reference: Any, cache_dir: Path) -> tuple[Path, Path]:
    """The fp32 ONNX export of the transformer (last hidden state) and its int8 quantization."""
    try:
        import onnx  # noqa: F401 (torch.onnx.export needs it)
        import onnxscript  # noqa: F401
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        raise BackendUnavailableError(
            f"{e.name} is not installed (pip install -e '.[bench]')"
        ) from e
    folder = cache_dir / f"all-MiniLM-L6-v2-{model_key()}"
    fp32, int8 = folder / "model.onnx", folder / "model.int8-per-channel.onnx"
    folder.mkdir(parents=True, exist_ok=True)
    if not fp32.is_file():

        class LastHiddenState(torch.nn.Module):
            def __init__(self, bert: torch.nn.Module) -> None:
                super().__init__()
                self.bert = bert

            def forward(
                self,
                input_ids: torch.Tensor,
                attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor,
            ) -> torch.Tensor:
                out = self.bert(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    token_type_ids=token_type_ids,
                )
                hidden: torch.Tensor = out.last_hidden_state
                return hidden

        sample = reference.tokenizer(["a short text", "a somewhat longer text"], padding=True)
        args = tuple(torch.tensor(sample[name]) for name in INPUTS)
        batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq", max=512)
        partial = fp32.with_suffix(".partial")
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                LastHiddenState(reference[0].auto_model).eval(),
                args,
                str(partial),
                input_names=list(INPUTS),
                output_names=["last_hidden_state"],
                dynamic_shapes={name: {0: batch, 1: seq} for name in INPUTS},
                dynamo=True,
                external_data=False,
            )
        partial.replace(fp32)
    if not int8.is_file():
        partial = int8.with_suffix(".partial")
        quantize_dynamic(str(fp32), str(partial), per_channel=True, weight_type=QuantType.QInt8)
        partial.replace(int8)
    return fp32, int8


def pooled_encoder(
    reference: Any, run: Callable[[Feed], npt.NDArray[np.float32]], batch_size: int
) -> Callable[[list[str]], Vectors]:
    """Encode as sentence-transformers does: longest texts first, batched, mean-pooled, unit."""
    tokenizer, max_length = reference.tokenizer, reference.max_seq_length

    def encode(texts: list[str]) -> Vectors:
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), reference.get_embedding_dimension()), dtype=np.float32)
        for begin in range(0, len(order), batch_size):
            rows = order[begin : begin + batch_size]
            tokens = tokenizer(
                [texts[i].strip() for i in rows],
                padding=True,
                truncation="longest_first",
                max_length=max_length,
                return_tensors="np",
            )
            feed = {name: tokens[name].astype(np.int64) for name in INPUTS}
            hidden = run(feed)
            mask = feed["attention_mask"][..., None].astype(np.float32)
            mean = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(mean, axis=1, keepdims=True)
            out[rows] = mean / np.clip(norms, 1e-12, None)
        return out

    return encode


def onnxruntime_backend(
    name: str, path: Path, reference: Any, batch_size: int, threads: int
) -> Backend:
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise BackendUnavailableError(f"onnxruntime is not installed ({e})") from e
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(feed: Feed) -> npt.NDArray[np.float32]:
        hidden: npt.NDArray[np.float32] = session.run(None, feed)[0]
        return hidden

    return Backend(
        name,
        pooled_encoder(reference, run, batch_size),
        f"onnxruntime {ort.__version__}, {threads} threads, {path.name}",
    )


def openvino_backend(path: Path, reference: Any, batch_size: int, threads: int) -> Backend:
    try:
        import openvino as ov
    except ImportError as e:
        raise BackendUnavailableError(f"openvino is not installed ({e})") from e
    compiled = ov.Core().compile_model(
        str(path), "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
    )
    request = compiled.create_infer_request()

    def run(feed: Feed) -> npt.NDArray[np.float32]:
        hidden: npt.NDArray[np.float32] = np.asarray(request.infer(feed)[0])
        return hidden

    return Backend(
        "openvino-fp32",
        pooled_encoder(reference, run, batch_size),
        f"openvino {ov.__version__}, {threads} threads, float32 forced, {path.name}",
    )


def open_backends(
    names: Sequence[str], reference: Any, batch_size: int, cache_dir: Path
) -> tuple[list[Backend], dict[str, str]]:
    """The backends that load, and for the others the reason they cannot."""
    import torch

    threads = torch.get_num_threads()
    backends: list[Backend] = []
    missing: dict[str, str] = {}
    onnx_files: tuple[Path, Path] | None = None
    onnx_error: str | None = None
    for name in names:
        try:
            if name == BASELINE:
                backends.append(torch_fp32())
                continue
            if name == "torch-int8":
                backends.append(torch_int8(reference, batch_size))
                continue
            if name == "openvino-default":
                backends.append(openvino_default())
                continue
            if onnx_files is None and onnx_error is None:
                try:
                    onnx_files = export_onnx(reference, cache_dir)
                except BackendUnavailableError as e:
                    onnx_error = str(e)
            if onnx_files is None:
                raise BackendUnavailableError(onnx_error or "no ONNX model")
            if name == "onnx-fp32":
                backends.append(
                    onnxruntime_backend(name, onnx_files[0], reference, batch_size, threads)
                )
            elif name == "onnx-int8":
                backends.append(
                    onnxruntime_backend(name, onnx_files[1], reference, batch_size, threads)
                )
            elif name == "openvino-fp32":
                backends.append(openvino_backend(onnx_files[0], reference, batch_size, threads))
        except BackendUnavailableError as e:
            missing[name] = str(e)
        except Exception as e:  # a backend that fails to load is reported, never fatal
            missing[name] = f"{type(e).__name__}: {e}"
    return backends, missing


# --- data -----------------------------------------------------------------------------------


def load_dataset(
    name: str,
    folder: Path,
    count_tokens: Callable[[str], int],
    max_tokens: int,
    limit: int,
    seed: int,
) -> Dataset:
    """The dev articles chunked as the index chunks them, and a seeded sample of questions."""
    overlap = int(IndexSettings.model_fields["chunk_overlap_tokens"].default)
    texts: list[str] = []
    article_ids: list[str] = []
    seen: set[str] = set()
    for article in load_corpus(CorpusSpec(folder / "articles.jsonl")):
        for chunk in chunk_article(
            article,
            max_tokens=max_tokens,
            overlap_tokens=overlap,
            count_tokens=count_tokens,
        ):
            if chunk.id not in seen:
                seen.add(chunk.id)
                texts.append(searchable_text(chunk, with_title=False))
                article_ids.append(chunk.article_id)
    questions = load_questions(folder / "questions.dev.jsonl")
    questions = random.Random(seed).sample(questions, min(limit, len(questions)))
    return Dataset(name, texts, article_ids, questions)


# --- measuring ------------------------------------------------------------------------------


def measure(
    backends: Sequence[Backend], datasets: Sequence[Dataset], block: int
) -> dict[str, Measured]:
    """Encode every chunk with every backend, block by block, the backends taking turns."""
    results = {b.name: Measured() for b in backends}
    warmup = datasets[0].texts[:32]
    for backend in backends:
        backend.encode(warmup)
    blocks = [
        (d.name, begin, d.texts[begin : begin + block])
        for d in datasets
        for begin in range(0, len(d.texts), block)
    ]
    parts: dict[str, dict[str, list[Vectors]]] = {
        b.name: {d.name: [] for d in datasets} for b in backends
    }
    started = time.perf_counter()
    for number, (dataset, _, texts) in enumerate(blocks):
        shift = number % len(backends)
        for backend in [*backends[shift:], *backends[:shift]]:
            begin = time.perf_counter()
            vectors = backend.encode(texts)
            results[backend.name].seconds.append(time.perf_counter() - begin)
            parts[backend.name][dataset].append(vectors)
        if (number + 1) % 5 == 0 or number + 1 == len(blocks):
            print(
                f"block {number + 1}/{len(blocks)}, {time.perf_counter() - started:.0f} s",
                flush=True,
            )
    for backend in backends:
        for d in datasets:
            results[backend.name].chunks[d.name] = np.concatenate(parts[backend.name][d.name])
            results[backend.name].questions[d.name] = backend.encode(
                [q.question for q in d.questions]
            )
    return results


def hits_at_k(
    chunk_vectors: Vectors, question_vectors: Vectors, dataset: Dataset, k: int = TOP_K
) -> list[bool]:
    """Per question: whether one of its k nearest chunks (cosine) is from a gold article."""
    scores = question_vectors @ chunk_vectors.T
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    return [
        any(dataset.article_ids[j] in question.article_ids for j in row)
        for row, question in zip(top, dataset.questions, strict=True)
    ]


def summarise(
    backend: Backend,
    measured: Measured,
    baseline: Measured,
    datasets: Sequence[Dataset],
    baseline_hits: dict[str, list[bool]],
) -> dict[str, Any]:
    chunks = sum(len(d.texts) for d in datasets)
    total = sum(measured.seconds)
    ratio = sum(baseline.seconds) / total
    per_block = [b / s for b, s in zip(baseline.seconds, measured.seconds, strict=True)]
    quartiles = statistics.quantiles(per_block, n=4) if len(per_block) > 1 else per_block * 3
    cosines = np.concatenate(
        [np.sum(measured.chunks[d.name] * baseline.chunks[d.name], axis=1) for d in datasets]
    )
    recall: dict[str, Any] = {}
    for d in datasets:
        hits = hits_at_k(measured.chunks[d.name], measured.questions[d.name], d)
        base = baseline_hits[d.name]
        recall[d.name] = {
            "recall_at_5": statistics.fmean(hits),
            "delta_vs_fp32": statistics.fmean(hits) - statistics.fmean(base),
            "questions_lost": sum(b and not h for h, b in zip(hits, base, strict=True)),
            "questions_gained": sum(h and not b for h, b in zip(hits, base, strict=True)),
        }
    reasons = []
    if backend.name != BASELINE:
        if ratio < MIN_SPEEDUP:
            reasons.append(f"speed {ratio:.2f}x < {MIN_SPEEDUP}x")
        reasons.extend(
            f"{name} recall {r['delta_vs_fp32']:+.3f}"
            for name, r in recall.items()
            if r["delta_vs_fp32"] < -MAX_RECALL_DROP - 1e-9
        )
    verdict = "baseline" if backend.name == BASELINE else ("adopt" if not reasons else "no")
    return {
        "available": True,
        "detail": backend.detail,
        "chunks": chunks,
        "seconds": round(total, 2),
        "chunks_per_second": round(chunks / total, 1),
        "speed_ratio": round(ratio, 3),
        "speed_ratio_per_block_quartiles": [round(q, 3) for q in quartiles],
        "mean_cosine_to_fp32": float(np.mean(cosines)),
        "min_cosine_to_fp32": float(np.min(cosines)),
        "recall": recall,
        "verdict": verdict,
        "reasons": reasons,
    }


def print_table(rows: dict[str, dict[str, Any]], datasets: Sequence[str]) -> None:
    recall_heads = " | ".join(f"{d} recall@5" for d in datasets)
    print(
        f"\n| backend | chunks/s | speed vs fp32 (IQR per block) | cos to fp32 (mean / min) "
        f"| {recall_heads} | verdict |"
    )
    print("|---|---|---|---|" + "---|" * len(datasets) + "---|")
    for name, row in rows.items():
        if not row["available"]:
            print(
                f"| {name} | - | - | - | "
                + "- | " * len(datasets)
                + f"not available: {row['reason']} |"
            )
            continue
        low, _, high = row["speed_ratio_per_block_quartiles"]
        recalls = " | ".join(
            f"{row['recall'][d]['recall_at_5']:.3f} ({row['recall'][d]['delta_vs_fp32']:+.3f})"
            for d in datasets
        )
        verdict = row["verdict"] + (f": {'; '.join(row['reasons'])}" if row["reasons"] else "")
        print(
            f"| {name} | {row['chunks_per_second']:.1f} | {row['speed_ratio']:.2f}x "
            f"({low:.2f}-{high:.2f}) | {row['mean_cosine_to_fp32']:.4f} / "
            f"{row['min_cosine_to_fp32']:.4f} | {recalls} | {verdict} |"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=list(DATASETS))
    parser.add_argument(
        "--backends",
        type=lambda value: [v.strip() for v in value.split(",") if v.strip()],
        default=list(BACKENDS),
        help=f"comma-separated, from {','.join(BACKENDS)} ({BASELINE} is always included)",
    )
    parser.add_argument("--questions", type=int, default=300, help="questions per dataset")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--block", type=int, default=256, help="chunks per timing round")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "embedding_backends.json"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backends: {', '.join(unknown)}")
    names = [BASELINE, *(b for b in BACKENDS if b in args.backends and b != BASELINE)]
    enforce_offline()
    import torch

    embedder = open_embedder()
    reference = load_reference()
    max_tokens = min(int(IndexSettings.model_fields["chunk_tokens"].default), embedder.max_tokens)
    started = time.perf_counter()
    datasets = [
        load_dataset(
            name,
            args.eval_dir / DATASETS[name],
            embedder.count_tokens,
            max_tokens,
            args.questions,
            args.seed,
        )
        for name in args.datasets
    ]
    print(
        "chunks: "
        + ", ".join(f"{d.name} {len(d.texts)} ({len(d.questions)} questions)" for d in datasets)
        + f"; chunked in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    backends, missing = open_backends(names, reference, embedder.batch_size, args.cache_dir)
    if not backends or backends[0].name != BASELINE:
        print(f"The baseline {BASELINE} did not load: {missing.get(BASELINE)}")
        return 1
    measured = measure(backends, datasets, args.block)
    baseline = measured[BASELINE]
    baseline_hits = {
        d.name: hits_at_k(baseline.chunks[d.name], baseline.questions[d.name], d) for d in datasets
    }
    rows: dict[str, dict[str, Any]] = {}
    for name in names:
        backend = next((b for b in backends if b.name == name), None)
        if backend is None:
            rows[name] = {"available": False, "reason": missing.get(name, "not loaded")}
        else:
            rows[name] = summarise(backend, measured[name], baseline, datasets, baseline_hits)
    result = {
        "machine": f"{platform.machine()}, {platform.system()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "note": "timings are ratios from one run, the backends taking turns block by block",
        "model": embedder.name,
        "batch_size": embedder.batch_size,
        "block": args.block,
        "seed": args.seed,
        "datasets": {
            d.name: {"chunks": len(d.texts), "questions": len(d.questions)} for d in datasets
        },
        "criteria": {"min_speed_ratio": MIN_SPEEDUP, "max_recall_drop": MAX_RECALL_DROP},
        "backends": rows,
    }
    print_table(rows, [d.name for d in datasets])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"\nWrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
