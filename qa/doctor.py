"""`python -m qa doctor`: checks the set-up a user has, and says what to do about each problem.

The CPU and its features, the llama.cpp build's features (read in a child process, as every use
of llama.cpp is), the embedding and language models, the index, and a few tokens of generation in
the model worker. Each check is a `Check`; the report prints them in order.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from index.embeddings import open_embedder_for
from index.errors import CiteqaError
from index.reader import open_store
from qa.config import Settings
from qa.cpu import (
    build_mismatch,
    enabled_options,
    parse_system_info,
    read_cpu_flags,
    read_cpu_model,
)
from qa.llm import LocalChatModel, check_generation, open_llm
from qa.prompt import fixed_messages
from qa.supervisor import describe_exit, worker_command

SYSTEM_INFO_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: what was checked, what was found, and what to do if it failed."""

    name: str
    ok: bool
    found: str
    fix: str = ""


def llama_system_info() -> tuple[str | None, str]:
    """The llama.cpp build's features, read by a child process: (info, problem)."""
    try:
        done = subprocess.run(
            worker_command("--system-info"),
            capture_output=True,
            timeout=SYSTEM_INFO_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"reading it took over {SYSTEM_INFO_TIMEOUT_S:g} s"
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip()[-300:]
        return None, f"the child process {describe_exit(done.returncode)}: {tail}"
    return done.stdout.decode("utf-8", "replace").strip(), ""


def check_cpu() -> Check:
    flags = read_cpu_flags()
    amx = sorted(f for f in flags if f.startswith("amx"))
    features = " ".join(o.removeprefix("GGML_") for o in enabled_options(flags)) or "baseline"
    found = f"{read_cpu_model()}; {features}"
    if amx:
        found += f"; has {' '.join(amx)} (left out of the build: llama.cpp's AMX path crashes)"
    else:
        found += "; no AMX"
    return Check("CPU", True, found)


def check_build() -> Check:
    info, problem = llama_system_info()
    reinstall = "Reinstall it for this CPU: rm -rf .venv && make install"
    if info is None:
        return Check("llama.cpp build", False, f"cannot be loaded: {problem}", reinstall)
    built = " ".join(parse_system_info(info))
    wrong = build_mismatch(info, read_cpu_flags())
    if wrong:
        return Check(
            "llama.cpp build",
            False,
            f"uses {', '.join(wrong)}, which this CPU lacks or which crash (built: {built})",
            reinstall,
        )
    return Check("llama.cpp build", True, built or info)


def check_embedder(settings: Settings) -> Check:
    started = time.perf_counter()
    embedder = open_embedder_for(settings)
    embedder.embed_query("test")
    seconds = time.perf_counter() - started
    where = settings.embedding_model_path or "packaged all-MiniLM-L6-v2"
    return Check("embedding model", True, f"{where}, {settings.embedding_backend}, {seconds:.1f} s")


def check_index(settings: Settings) -> Check:
    store = open_store(settings.index_dir, settings.collection, settings.chroma_url)
    try:
        stats = store.stats()
    finally:
        store.close()
    where = settings.chroma_url or settings.index_dir
    return Check(
        "index",
        True,
        f"{where}: {stats.articles} articles, {stats.chunks} chunks, {stats.built_at}",
    )


def check_model(settings: Settings) -> Check:
    """Load the language model in its worker and write a few tokens."""
    if settings.llm_backend != "local":
        return Check("language model", True, f"backend {settings.llm_backend}: not checked here")
    started = time.perf_counter()
    llm = open_llm(settings)
    assert isinstance(llm, LocalChatModel)
    try:
        info = llm.supervisor.start()
        check_generation(llm, fixed_messages())
    finally:
        llm.close()
    seconds = time.perf_counter() - started
    kept = {
        "read": "the prompt's fixed start read from its kept state",
        "written": "the prompt's fixed start kept for the next start",
    }.get(
        llm.supervisor.prefix or "",
        "the prompt's fixed start not kept (its folder is not writable)",
    )
    return Check(
        "language model",
        True,
        f"{llm.model_path}: loaded in {info.load_s:.1f} s, first tokens written in a worker "
        f"process ({seconds:.1f} s in all; {kept})",
    )


def guarded(name: str, check: Callable[[], Check], fix: str) -> Check:
    """Run `check`; a citeqa error becomes a failed check with its message."""
    try:
        return check()
    except CiteqaError as e:
        return Check(name, False, str(e), fix)


def run_checks(settings: Settings) -> Iterator[Check]:
    """Every check, in the order a problem is best fixed."""
    yield check_cpu()
    yield check_build()
    yield guarded(
        "embedding model",
        lambda: check_embedder(settings),
        "Reinstall the packages (make install) or fix CITEQA_EMBEDDING_MODEL_PATH.",
    )
    yield guarded(
        "index",
        lambda: check_index(settings),
        "Build it with: python -m index rebuild",
    )
    yield guarded(
        "language model",
        lambda: check_model(settings),
        "Until this is fixed, citeqa answers with the best supporting sentences (extractive "
        "mode). If the build line above shows a problem, reinstall; otherwise check "
        "CITEQA_LLM_MODEL, or set CITEQA_LLM_BACKEND=extractive.",
    )


def format_check(check: Check) -> str:
    mark = "ok " if check.ok else "FAIL"
    line = f"[{mark}] {check.name}: {check.found}"
    return f"{line}\n       -> {check.fix}" if check.fix and not check.ok else line
