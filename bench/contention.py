"""Benchmark of answers on a busy machine: time to first token and total time of the answer chain
(the default model, in its worker process), quiet and beside other work, as ratios in one run.

    python bench/contention.py [--index-dir DIR] [--rounds 2] [--model qwen2.5-coder-1.5b]
        [--corpus ../shared/eval/squad_v1.1/articles.jsonl] [--out bench/results/contention.json]

Conditions, each with the same questions about `articles/`:

- quiet: nothing else runs;
- busy loop: one Python process spinning at normal priority (`while True: pass`);
- JSON job: one Python process parsing and writing JSON in a loop, at normal priority;
- rebuild: `python -m index rebuild` of the `--corpus` articles (a few thousand chunks) into a
  temporary folder, started again whenever it finishes, as the CLI runs it (at lower priority);
- rebuild at normal priority: the same with the CLI's lower priority undone.

Both rebuilds pause their embedding while an answer is being written (`index.courtesy`).

Each condition runs with two thread policies: `adaptive` (the default: one model thread per
core that other work leaves free, measured over the last second) and `fixed` (always
`CITEQA_LLM_THREADS`, as before). The target: with `adaptive`, time to first token and total
time at most 2x quiet beside a busy process and during a rebuild. Writes a table and a JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "eval" / "squad_v1.1" / "articles.jsonl"
QUESTIONS = (
    "What does Wang Lei coordinate?",
    "Who is Wang Lei?",
    "Where did the China-EU Cyber Taskforce meet?",
    "What did China offer the EU?",
)
BUSY_LOOP = "while True: pass"
JSON_JOB = (
    "import json\n"
    "data = [{'id': i, 'text': 'word ' * 40, 'tags': list(range(20))} for i in range(2000)]\n"
    "while True: json.loads(json.dumps(data))\n"
)
# The CLI as it was: building at the priority it was started with.
REBUILD_AT_NORMAL_PRIORITY = (
    "import sys, index.__main__ as cli\ncli.INDEX_NICENESS = 0\nsys.exit(cli.main(sys.argv[1:]))\n"
)
WARM_S = 2.0  # for the other work to get going before the first question


@contextlib.contextmanager
def running(command: list[str] | None, env: dict[str, str]) -> Iterator[None]:
    """Keep `command` running (restarted when it ends) for the duration; None runs nothing."""
    if command is None:
        yield
        return
    stop = False
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def keep() -> None:
        nonlocal process
        while not stop:
            if process.poll() is not None and not stop:
                process = subprocess.Popen(
                    command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            time.sleep(0.2)

    keeper = threading.Thread(target=keep, daemon=True)
    keeper.start()
    time.sleep(WARM_S)
    try:
        yield
    finally:
        stop = True
        keeper.join()
        process.kill()
        process.wait()


def conditions(corpus: Path, scratch: Path) -> dict[str, list[str] | None]:
    python = sys.executable
    rebuild = ["--index-dir", str(scratch), "rebuild", "--quiet", "--source", str(corpus)]
    return {
        "quiet": None,
        "busy loop": [python, "-c", BUSY_LOOP],
        "JSON job": [python, "-c", JSON_JOB],
        "rebuild": [python, "-m", "index", *rebuild],
        "rebuild, normal priority": [python, "-c", REBUILD_AT_NORMAL_PRIORITY, *rebuild],
    }


class FixedThreads:
    """The thread policy as it was: always the configured number."""

    def threads(self, limit: int) -> int:
        return limit

    def exclude(self, pid: int | None) -> None:
        pass

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def ask_all(chain: Any, rounds: int) -> tuple[list[tuple[float, float]], int]:
    """(time to first token, total) of each question, `rounds` times over, and how many answers
    ran past the timeout (their times count as the timeout: a lower bound)."""
    times = []
    late = 0
    limit = chain.settings.llm_timeout_s
    for _ in range(rounds):
        for question in QUESTIONS:
            started = time.perf_counter()
            answer = chain.invoke(question)
            total = time.perf_counter() - started
            if answer.backend != "local":
                late += 1
                total = max(total, limit)
            times.append((answer.seconds_to_first_token or total, total))
    return times, late


def summarise(times: list[tuple[float, float]], late: int) -> dict[str, float]:
    return {
        "ttft_median_s": round(statistics.median(t for t, _ in times), 3),
        "total_median_s": round(statistics.median(t for _, t in times), 3),
        "ttft_max_s": round(max(t for t, _ in times), 3),
        "total_max_s": round(max(t for _, t in times), 3),
        "answers": len(times),
        "past_timeout": late,
    }


def build_sample_index(folder: Path, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "index", "--index-dir", str(folder), "rebuild", "--quiet"],
        env=env,
        check=True,
        cwd=ROOT,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, help="an index of articles/ (default: build one)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="articles to rebuild")
    parser.add_argument("--rounds", type=int, default=2, help="times each question is asked")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds an answer may take")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "contention.json")
    args = parser.parse_args(argv)
    if not args.corpus.is_file():
        parser.error(f"no articles at {args.corpus}; pass --corpus")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITEQA_")}

    from qa import Settings, build_chain
    from qa.llm import LocalChatModel

    with tempfile.TemporaryDirectory() as tmp:
        index_dir = args.index_dir or Path(tmp) / "index"
        if args.index_dir is None:
            build_sample_index(index_dir, env)
        settings = Settings(index_dir=index_dir, llm_model=args.model, llm_timeout_s=args.timeout)
        chain = build_chain(settings)
        assert isinstance(chain.llm, LocalChatModel)
        supervisor = chain.llm.supervisor
        adaptive = supervisor.meter
        ask_all(chain, 1)  # warm: the model's pages and the prompt's cached prefix
        rows: list[dict[str, Any]] = []
        quiet_times: list[tuple[float, float]] = []  # both policies: the same on a quiet machine
        # The fixed policy is the old one, measured once per question: beside a busy process its
        # answers run into the timeout.
        policies = (("adaptive", adaptive, args.rounds), ("fixed", FixedThreads(), 1))
        for policy, meter, rounds in policies:
            supervisor.meter = meter  # type: ignore[assignment]
            for name, command in conditions(args.corpus, Path(tmp) / "rebuilt").items():
                with running(command, env):
                    times, late = ask_all(chain, rounds)
                if name == "quiet":
                    quiet_times += times
                rows.append({"condition": name, "threads": policy, **summarise(times, late)})
                print(f"{name:26} {policy:9} {rows[-1]}", flush=True)
        supervisor.meter = adaptive
        chain.llm.close()

    base = summarise(quiet_times, 0)
    for row in rows:
        row["ttft_vs_quiet"] = round(row["ttft_median_s"] / base["ttft_median_s"], 2)
        row["total_vs_quiet"] = round(row["total_median_s"] / base["total_median_s"], 2)
    payload = {
        "benchmark": "contention",
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "model": args.model,
        "questions": list(QUESTIONS),
        "rounds": args.rounds,
        "rows": rows,
        "quiet": base,
        "note": "ratios are to the medians of every quiet answer (both policies use every core "
        "on a quiet machine)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(table(rows))
    print(f"\n{payload['cpu']}, {payload['cores']} cores; written to {args.out}")
    return 0


def cpu_model() -> str:
    from qa.cpu import read_cpu_model

    return read_cpu_model()


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| condition | threads | first token (median) | total (median) | first token vs quiet "
        "| total vs quiet | past the timeout |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['condition']} | {r['threads']} | {r['ttft_median_s']:.2f} s "
            f"| {r['total_median_s']:.2f} s | {r['ttft_vs_quiet']:.2f}x "
            f"| {r['total_vs_quiet']:.2f}x | {r['past_timeout']} of {r['answers']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
