"""Benchmark of start-up and memory: how long a fresh process takes to be ready to answer, where
that time goes, and how much memory the app holds, all without the language model; then, apart,
how long the language model takes to load.

    python bench/startup.py [--index-dir DIR] [--collection articles] [--runs 5]
        [--questions 20] [--eval-dir ../shared/eval/squad_v1.1] [--no-ui] [--no-llm]
        [--model NAME] [--profile startup.prof] [--out bench/results/startup.json]

Without `--index-dir`, an index of `articles/` is built into a temporary folder first
(`python -m index rebuild`), so the numbers are those of that small index.

Each run is a fresh `python` process (this script with `--child`), started by the parent, with
`CITEQA_LLM_BACKEND=extractive` (no model). The clock starts when the parent starts the process,
so interpreter start and imports count. The child notes the time of each step:

- interpreter: until the child's first statement; imports: `qa` (what the app imports, gradio
  aside); settings: `Settings.from_env()`;
- the steps of `build_chain` (timed by wrapping the functions it calls): embedder load, store
  open, index check, keyword index load, and the rest of the chain;
- first retrieval: one `retriever.search`. The process is then "answer-ready";
- unless `--no-ui`: importing gradio and `app`, the embedding model's warm-up
  (`chain.warm_up()`) and `app.create_demo(chain)` (what the app process pays before it
  serves, `launch` aside);
- then `--questions` extractive answers (`chain.invoke`) with real questions: SQuAD's from
  `--eval-dir` (`questions.dev.jsonl`) when it is there, else a few built in.

Memory is the child's resident set (VmRSS) and its peak (VmHWM) from `/proc/self/status`, at
answer-ready, with the UI built, and after the answers; 1 MB = 10^6 bytes. The language model is
loaded in two more fresh processes (`CITEQA_LLM_BACKEND=local`), unless `--no-llm`, each to the
end of its start-up check (two tokens after the prompt's fixed start), over a model cache with no
kept prompt state: the first reads the fixed start and keeps its state, the second reads that.

Timings depend on the machine and on what else runs on it: the load average before and after is
recorded. After the first run the files are in the operating system's cache, so run 1 is the
coldest; the median is of warm starts. `--profile` writes a cProfile of one more (slower) start.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EVAL_DIR = ROOT.parent / "shared" / "eval" / "squad_v1.1"
QUESTIONS_FILE = "questions.dev.jsonl"
# Used when there is no evaluation folder: about `articles/` and two it does not cover.
BUILTIN_QUESTIONS = (
    "Who is Wang Lei?",
    "Who won Super Bowl 50?",
    "What did China and the EU agree on digital trade?",
    "Which team represented the AFC at Super Bowl 50?",
    "What caused the 1973 oil crisis?",
    "When did the Black Death reach Europe?",
    "What is the best recipe for banana bread?",
)
# The targets: seconds to answer-ready, MB of peak memory with the app's work done.
TARGET_READY_S = 10.0
TARGET_RSS_MB = 1500.0

P = ParamSpec("P")
R = TypeVar("R")


# ---- the child: one start, timed step by step ----


def now() -> float:
    """Wall-clock seconds, comparable between the parent and its children."""
    return time.time()


def memory(pid: int | str = "self") -> dict[str, float | None]:
    """A process's resident set and its peak, in MB (None where `/proc` is not there): this
    one's, or that of process `pid`."""
    found: dict[str, float | None] = {"rss_mb": None, "peak_mb": None}
    try:
        lines = Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines()
    except OSError:
        return found
    keys = {"VmRSS:": "rss_mb", "VmHWM:": "peak_mb"}
    for line in lines:
        parts = line.split()
        if parts and parts[0] in keys:
            found[keys[parts[0]]] = int(parts[1]) * 1024 / 1e6  # kB (KiB) in /proc
    return found


class Steps:
    """Seconds per named step, in the order the steps first ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        begun = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - begun

    def wrap(self, name: str, fn: Callable[P, R]) -> Callable[P, R]:
        """`fn`, with the time spent in it added to step `name`."""

        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            with self.step(name):
                return fn(*args, **kwargs)

        return timed

    def patch(
        self, owner: object, attribute: str, name: str, then: Callable[[Any], None] | None = None
    ) -> None:
        """Add the time of every later call of `owner.attribute` to step `name`; `then` is
        given each value it returns."""
        timed = self.wrap(name, getattr(owner, attribute))

        def patched(*args: Any, **kwargs: Any) -> Any:
            value = timed(*args, **kwargs)
            if then is not None:
                then(value)
            return value

        setattr(owner, attribute, patched)


def child_answer(result_path: Path, questions_path: Path, spawned_at: float, ui: bool) -> int:
    """One start of the answering process (extractive backend), as `python app.py` does it."""
    started = now()
    steps = Steps()
    with steps.step("imports"):
        import qa
        import qa.chain
    with steps.step("settings"):
        qa.enforce_offline()
        settings = qa.Settings.from_env()

    # Time the parts of `build_chain` by wrapping what it calls; the rest is "chain (other)".
    def time_store(store: Any) -> None:
        steps.patch(store, "check", "index check")
        steps.patch(store, "keyword_index", "keyword index load")

    steps.patch(qa.chain, "open_embedder_for", "embedder load")
    steps.patch(qa.chain, "open_store", "store open", then=time_store)
    begun = time.perf_counter()
    chain = qa.build_chain(settings)
    parts = sum(steps.seconds.get(name, 0.0) for name in CHAIN_PARTS)
    steps.seconds["chain (other)"] = time.perf_counter() - begun - parts

    questions: list[str] = json.loads(questions_path.read_text(encoding="utf-8"))
    with steps.step("first retrieval"):
        chain.retriever.search(questions[0])
    ready = now()
    memory_ready = memory()

    ui_ready: float | None = None
    memory_ui: dict[str, float | None] | None = None
    if ui:
        with steps.step("gradio import"):
            import gradio  # noqa: F401 (app.py's first import of its own)
        with steps.step("app import"):
            import app
        with steps.step("warm-up"):
            chain.warm_up()  # as app.main does before serving
        with steps.step("create_demo"):
            app.create_demo(chain)
        ui_ready = now()
        memory_ui = memory()

    answer_seconds: list[float] = []
    covered = 0
    for question in questions:
        begun = time.perf_counter()
        answer = chain.invoke(question)
        answer_seconds.append(time.perf_counter() - begun)
        covered += answer.covered
    memory_answers = memory()

    stats = chain.retriever.store.stats()
    result = {
        "spawned_at": spawned_at,
        "started_at": started,
        "ready_at": ready,
        "ui_ready_at": ui_ready,
        "steps": steps.seconds,
        "memory": {"ready": memory_ready, "ui": memory_ui, "answers": memory_answers},
        "answers": {
            "count": len(answer_seconds),
            "covered": covered,
            "median_s": statistics.median(answer_seconds) if answer_seconds else None,
            "max_s": max(answer_seconds, default=None),
        },
        "index": {
            "chunks": chain.retriever.store.count(),
            "articles": stats.articles,
            "build_id": stats.build_id,
            "built_at": stats.built_at,
            "embedding_model": stats.fingerprint.embedding_model,
            "retriever": settings.retriever,
            "keyword_chunks": len(chain.retriever.keyword) if chain.retriever.keyword else None,
        },
    }
    result_path.write_text(json.dumps(result), encoding="utf-8")
    return 0


CHAIN_PARTS = ("embedder load", "store open", "index check", "keyword index load")


def child_llm(result_path: Path, spawned_at: float) -> int:
    """One load of the configured language model (`CITEQA_LLM_BACKEND=local`)."""
    started = now()
    steps = Steps()
    with steps.step("imports"):
        import qa
        from qa.llm import check_generation, open_llm
        from qa.models import resolve_model_path
        from qa.prompt import fixed_messages
    settings = qa.Settings.from_env()
    before = memory()
    with steps.step("model file ready"):  # assembled and verified once, then a stat
        path = resolve_model_path(settings.llm_model, settings.model_cache_dir)
    with steps.step("model load"):  # in the worker process open_llm starts
        llm = open_llm(settings)
    with steps.step("start-up check"):  # the prompt's fixed start: read, or its state restored
        if llm is not None:
            check_generation(llm, fixed_messages())
    supervisor = getattr(llm, "supervisor", None)
    worker = getattr(supervisor, "pid", None)
    result = {
        "spawned_at": spawned_at,
        "started_at": started,
        "loaded_at": now(),
        "model": settings.llm_model,
        "model_file": path.name,
        "model_file_mb": path.stat().st_size / 1e6,
        "loaded": llm is not None,
        "prompt_state": getattr(supervisor, "prefix", None),
        "steps": steps.seconds,
        "memory": {"before": before, "after": memory()},
        "worker_rss_mb": worker_rss_mb(worker),
    }
    result_path.write_text(json.dumps(result), encoding="utf-8")
    return 0


def stateless_model_cache(work: Path, env: dict[str, str]) -> Path:
    """A model cache with no kept prompt state: the assembled default model (and its stamp)
    linked from the real cache, so nothing is assembled again or deleted there."""
    from index.config import default_cache_dir
    from qa.models import QWEN_FILE, verified_stamp

    real = Path(env.get("CITEQA_MODEL_CACHE_DIR") or default_cache_dir()).expanduser()
    cache = work / "model-cache"
    cache.mkdir(exist_ok=True)
    for name in (QWEN_FILE, verified_stamp(Path(QWEN_FILE)).name):
        if (real / name).exists() and not (cache / name).exists():
            (cache / name).symlink_to(real / name)
    return cache


def worker_rss_mb(pid: int | None) -> float | None:
    """The model worker's resident set, in MB (where the model's memory now is)."""
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    return None


# ---- the parent: index, questions, runs, table ----


def load_questions(eval_dir: Path | None, count: int) -> tuple[list[str], str]:
    """`count` questions spread over the evaluation file, or the built-in ones; and where from."""
    path = eval_dir / QUESTIONS_FILE if eval_dir is not None else None
    if path is None or not path.is_file():
        return list(BUILTIN_QUESTIONS[: max(1, count)]), "built-in"
    found: list[str] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                found.append(str(json.loads(line)["question"]))
    if not found:
        return list(BUILTIN_QUESTIONS[: max(1, count)]), "built-in"
    stride = max(1, len(found) // max(1, count))
    return found[::stride][: max(1, count)], path.name


def build_index(index_dir: Path, env: dict[str, str]) -> None:
    """Build an index of the repository's `articles/` into `index_dir`."""
    command = [sys.executable, "-m", "index", "rebuild", "--source", str(ROOT / "articles")]
    print(f"building an index of articles/ in {index_dir} ...", flush=True)
    subprocess.run(
        [*command, "--quiet"],
        cwd=ROOT,
        env={**env, "CITEQA_INDEX_DIR": str(index_dir)},
        check=True,
        stdout=subprocess.DEVNULL,
    )


def run_child(
    mode: str,
    env: dict[str, str],
    work: Path,
    number: int,
    timeout: float,
    extra: Sequence[str] = (),
    python_flags: Sequence[str] = (),
) -> dict[str, Any]:
    """Start this script as a fresh child in `mode`; its result, or RuntimeError with its log."""
    result = work / f"{mode}-{number}.json"
    log = work / f"{mode}-{number}.log"
    result.unlink(missing_ok=True)
    with log.open("wb") as out:
        spawned_at = now()
        command = [
            sys.executable,
            *python_flags,
            str(Path(__file__).resolve()),
            "--child",
            mode,
            "--result",
            str(result),
            "--spawned-at",
            repr(spawned_at),
            *extra,
        ]
        try:
            done = subprocess.run(
                command, cwd=ROOT, env=env, stdout=out, stderr=out, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"{mode} run {number} took over {timeout:g} s") from e
    if done.returncode != 0 or not result.is_file():
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"{mode} run {number} failed (exit {done.returncode}):\n{tail}")
    found: dict[str, Any] = json.loads(result.read_text(encoding="utf-8"))
    return found


def timeline(run: dict[str, Any]) -> dict[str, float]:
    """A run's seconds per step, with the wall-clock totals measured from the process start."""
    spawned = run["spawned_at"]
    rows = {"interpreter start": run["started_at"] - spawned, **run["steps"]}
    ordered: dict[str, float] = {}
    for name, seconds in rows.items():
        if name == "gradio import":
            ordered["= answer-ready (wall)"] = run["ready_at"] - spawned
        ordered[name] = seconds
    if "= answer-ready (wall)" not in ordered:
        ordered["= answer-ready (wall)"] = run["ready_at"] - spawned
    if run.get("ui_ready_at") is not None:
        ordered["= app ready, UI built (wall)"] = run["ui_ready_at"] - spawned
    if run["answers"]["median_s"] is not None:
        ordered[f"answer, median of {run['answers']['count']}"] = run["answers"]["median_s"]
    return ordered


def memory_rows(run: dict[str, Any]) -> dict[str, float]:
    """A run's memory figures, in MB, by name."""
    rows: dict[str, float] = {}
    labels = {"ready": "at answer-ready", "ui": "with the UI built", "answers": "after the answers"}
    for key, label in labels.items():
        found = run["memory"].get(key)
        if found is None:
            continue
        if found["rss_mb"] is not None:
            rows[f"RSS {label}"] = found["rss_mb"]
        if found["peak_mb"] is not None:
            rows[f"peak RSS {label}"] = found["peak_mb"]
    return rows


def summarise(values: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per name: run 1, median and max over the runs that have it."""
    names: dict[str, None] = {}
    for row in values:
        names.update(dict.fromkeys(row))
    summary: dict[str, dict[str, float]] = {}
    for name in names:
        found = [row[name] for row in values if name in row]
        summary[name] = {
            "first": found[0],
            "median": statistics.median(found),
            "max": max(found),
        }
    return summary


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def print_table(title: str, unit: str, summary: dict[str, dict[str, float]]) -> None:
    print(f"\n{title:38} {'run 1':>9} {'median':>9} {'max':>9}  ({unit})")
    for name, row in summary.items():
        digits = 2 if unit == "s" else 0
        cells = " ".join(f"{row[key]:>9.{digits}f}" for key in ("first", "median", "max"))
        print(f"{name:38} {cells}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--index-dir", type=Path, help="a built index (default: build one)")
    parser.add_argument("--collection", default="articles")
    parser.add_argument("--runs", type=int, default=5, help="fresh starts (default 5)")
    parser.add_argument("--questions", type=int, default=20, help="answers after the start")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--no-ui", action="store_true", help="leave out gradio and the page")
    parser.add_argument("--no-llm", action="store_true", help="do not time the model load")
    parser.add_argument("--model", help="the language model (default: CITEQA_LLM_MODEL)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per child")
    parser.add_argument("--profile", type=Path, help="write a cProfile of one more start here")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "startup.json")
    # The child's side: one start, its result written as JSON.
    parser.add_argument("--child", choices=("answer", "llm"), help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--spawned-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--questions-file", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child is not None:
        if args.child == "llm":
            return child_llm(args.result, args.spawned_at)
        return child_answer(args.result, args.questions_file, args.spawned_at, not args.no_ui)
    if args.runs < 1:
        print("Error: --runs must be at least 1", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="citeqa-startup-") as tmp:
        work = Path(tmp)
        try:
            return benchmark(args, work)
        except (RuntimeError, subprocess.CalledProcessError) as e:
            print(f"Error: {e}", file=sys.stderr)
            return 1


def benchmark(args: argparse.Namespace, work: Path) -> int:
    env = {**os.environ, "CITEQA_COLLECTION": args.collection}
    index_dir: Path = args.index_dir.resolve() if args.index_dir else work / "index"
    if args.index_dir is None:
        build_index(index_dir, env)
    env["CITEQA_INDEX_DIR"] = str(index_dir)
    questions, source = load_questions(args.eval_dir, args.questions)
    questions_file = work / "questions.json"
    questions_file.write_text(json.dumps(questions), encoding="utf-8")
    answer_env = {**env, "CITEQA_LLM_BACKEND": "extractive"}
    extra = ["--questions-file", str(questions_file), *(["--no-ui"] if args.no_ui else [])]

    load_before = load_average()
    runs = []
    for number in range(1, args.runs + 1):
        print(f"start {number}/{args.runs} ...", flush=True)
        runs.append(run_child("answer", answer_env, work, number, args.timeout, extra))
    llms: list[dict[str, Any]] = []
    if not args.no_llm:
        print("loading the language model ...", flush=True)
        llm_env = {
            **env,
            "CITEQA_LLM_BACKEND": "local",
            "CITEQA_MODEL_CACHE_DIR": str(stateless_model_cache(work, env)),
        }
        if args.model:
            llm_env["CITEQA_LLM_MODEL"] = args.model
        llms = [run_child("llm", llm_env, work, number, args.timeout) for number in (1, 2)]
    load_after = load_average()
    if args.profile is not None:
        print(f"profiling one more start into {args.profile} ...", flush=True)
        flags = ["-m", "cProfile", "-o", str(args.profile.resolve())]
        run_child("answer", answer_env, work, 0, args.timeout, extra, python_flags=flags)

    times = summarise([timeline(run) for run in runs])
    memory_summary = summarise([memory_rows(run) for run in runs])
    index = runs[-1]["index"]
    ready = times["= answer-ready (wall)"]["median"]
    peak_key = "peak RSS after the answers"
    peak = memory_summary[peak_key]["max"] if peak_key in memory_summary else None
    result: dict[str, Any] = {
        "machine": machine(),
        "load_average": {"before": load_before, "after": load_after},
        "index": {
            "index_dir": "built from articles/" if args.index_dir is None else str(args.index_dir),
            "collection": args.collection,
            **index,
        },
        "runs": args.runs,
        "questions": {"count": len(questions), "source": source},
        "seconds": times,
        "memory_mb": memory_summary,
        "answers_covered": [run["answers"]["covered"] for run in runs],
        "llm": llm_summary(llms[0]) if llms else None,
        "llm_with_kept_state": llm_summary(llms[1]) if llms else None,
        "targets": {
            "answer_ready_median_s": ready,
            "answer_ready_target_s": TARGET_READY_S,
            "answer_ready_met": ready <= TARGET_READY_S,
            "peak_rss_mb": peak,
            "peak_rss_target_mb": TARGET_RSS_MB,
            "peak_rss_met": None if peak is None else peak <= TARGET_RSS_MB,
        },
        "raw_runs": runs,
    }

    print(
        f"\nindex: {index['chunks']} chunks, {index['articles']} articles "
        f"(build {index['build_id']}, retriever {index['retriever']}); "
        f"{args.runs} fresh starts; {len(questions)} questions ({source})"
    )
    print(f"machine: {result['machine']['platform']}, {result['machine']['cpu_count']} CPUs")
    print(f"load average before {load_before}, after {load_after} (shared CPU: timings are noisy)")
    print_table("start-up step (extractive, no LLM)", "s", times)
    print_table("memory (extractive, no LLM)", "MB", memory_summary)
    for key in ("llm", "llm_with_kept_state"):
        if result[key] is not None:
            summary = result[key]
            print(
                f"\nlanguage model ({summary['model']}), one load; its prompt state "
                f"{summary['prompt_state'] or 'not kept'}:"
            )
            for name, seconds in summary["seconds"].items():
                print(f"  {name:46} {seconds:>9.2f} s")
            added = summary["rss_added_mb"]
            if added is not None:
                print(f"  {'RSS added by the model':46} {added:>9.0f} MB")
            if summary["worker_rss_mb"] is not None:
                print(f"  {'RSS of the model worker':46} {summary['worker_rss_mb']:>9.0f} MB")
    print(
        f"\ntargets: answer-ready median {ready:.2f} s (<= {TARGET_READY_S:g} s: "
        f"{'met' if ready <= TARGET_READY_S else 'NOT met'}); "
        + (
            f"peak RSS {peak:.0f} MB (<= {TARGET_RSS_MB:g} MB: "
            f"{'met' if peak <= TARGET_RSS_MB else 'NOT met'})"
            if peak is not None
            else "peak RSS unknown here"
        )
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


def llm_summary(llm: dict[str, Any] | None) -> dict[str, Any] | None:
    if llm is None:
        return None
    before = llm["memory"]["before"]["rss_mb"]
    after = llm["memory"]["after"]["rss_mb"]
    return {
        "model": llm["model"],
        "model_file": llm["model_file"],
        "model_file_mb": round(llm["model_file_mb"]),
        "seconds": {
            "interpreter start": llm["started_at"] - llm["spawned_at"],
            **llm["steps"],
            "= ready to answer (wall, from process start)": llm["loaded_at"] - llm["spawned_at"],
        },
        "prompt_state": llm.get("prompt_state"),
        "rss_added_mb": None if before is None or after is None else after - before,
        "worker_rss_mb": llm.get("worker_rss_mb"),
        "memory": llm["memory"],
    }


if __name__ == "__main__":
    raise SystemExit(main())
