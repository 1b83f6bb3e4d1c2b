"""Rebuilding and syncing the index, with a report of what happened.

Both write a new build beside the live one and publish it only once it is checked (chunk count, a
probe query, the keyword index), so a failure or a kill at any moment leaves the old index
answering. A rebuild writes every article. A sync embeds only new and changed articles into its
build, which reads the unchanged ones from the earlier builds holding them (`index.layering` says
which, and when they are merged); when nothing changed it writes nothing. Builds are never changed
once published. One writer at a time (`index.lock`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from index.backends import Backend, open_backend
from index.chunking import chunk_article, searchable_text
from index.config import IndexSettings
from index.courtesy import wait_while_answering
from index.dedup import SignatureCache
from index.embeddings import Embedder
from index.errors import CiteqaIndexError, IndexDamagedError, IndexWriteError
from index.fingerprint import check_fingerprint, fingerprint_for, settings_key
from index.keyword import build_keyword_index, load_keyword_index, save_keyword_index
from index.layering import LayerPlan, plan_layers
from index.layout import IndexLayout, new_build_id
from index.lock import writer_lock
from index.manifest import ArticleEntry, IndexFingerprint, Manifest, load_manifest, save_manifest
from index.plan import ChangePlan, IndexReport, Mode, plan_changes
from index.progress import ProgressCallback
from index.reader import Store, check_build_files, open_manifest, open_store
from index.records import record_metadata, reorigin
from index.sources import load_sources
from index.stored import StoredChunk
from index.types import Article, Chunk, Duplicate, Rejection
from index.writer import BuildWriter

log = logging.getLogger(__name__)

# Called with (step, items done so far, total items); a new step name starts a new bar.
StepProgress = Callable[[str, int, int], None]
COPYING = "Copying unchanged"
EMBEDDING = "Embedding"
STEP_UNITS = {COPYING: "chunk", EMBEDDING: "chunk"}
# The embedding model, or how to load it: a writer loads it only when it has work for it.
EmbedderSource = Embedder | Callable[[], Embedder]


def rebuild_index(
    settings: IndexSettings,
    embedder: EmbedderSource,
    source: Path | str | Sequence[Path | str],
    progress: StepProgress | None = None,
) -> tuple[Store, IndexReport]:
    """Read, chunk and embed every article from `source` into a new build, then switch to it."""
    report = update_index(settings, embedder, _as_sources(source), mode="rebuild", steps=progress)
    return _open(settings), report


def sync_index(
    settings: IndexSettings,
    embedder: EmbedderSource,
    source: Path | str | Sequence[Path | str],
    progress: StepProgress | None = None,
) -> IndexReport:
    """Bring the index in step with `source`: embed new and changed articles, drop removed ones,
    reuse the rest. Writes nothing when nothing changed."""
    return update_index(settings, embedder, _as_sources(source), mode="sync", steps=progress)


def index_articles(
    settings: IndexSettings,
    embedder: Embedder,
    articles: Sequence[Article],
    progress: ProgressCallback | None = None,
) -> tuple[Store, IndexReport]:
    """Rebuild the index from `articles` already read (embedding progress to `progress`)."""

    def steps(step: str, done: int, total: int) -> None:
        if progress is not None and step == EMBEDDING:
            progress(done, total)

    loaded = (tuple(articles), (), ())
    report = update_index(settings, embedder, (), mode="rebuild", steps=steps, loaded=loaded)
    return _open(settings), report


def update_index(
    settings: IndexSettings,
    embedder: EmbedderSource,
    sources: Sequence[Path | str],
    *,
    mode: Mode,
    steps: StepProgress | None = None,
    loaded: tuple[Sequence[Article], Sequence[Rejection], Sequence[Duplicate]] | None = None,
) -> IndexReport:
    """Rebuild or sync under the writer lock: plan, write a new build, check it, publish it.

    The lock comes first (a second writer fails at once); the model is loaded only when there is
    something to embed or a fingerprint to compare."""
    started = time.perf_counter()
    layout = IndexLayout(settings.index_dir, settings.collection)
    with write_errors(layout), writer_lock(layout):
        backend = open_backend(layout, settings.chroma_url)
        try:
            live = backend.live_build()
        except IndexDamagedError:
            if mode == "sync":
                raise
            log.warning("the index pointer is damaged; rebuilding without the old index")
            live = None
        previous = _previous_manifest(backend, live, mode)
        if live is not None:  # what an earlier writer left unfinished, or replaced when killed
            keep = set(previous.builds_read()) if previous is not None else {live}
            if backend.remove_builds(keep=keep):
                log.info("removed unfinished or replaced builds")
        if loaded is None:
            signatures = SignatureCache.load(layout.signatures_path)
            result = load_sources(sources, signatures=signatures)
            loaded = (result.articles, result.rejected, result.duplicates)
            _keep_signatures(signatures, layout)
        articles, rejected = _unique_ids(loaded[0], loaded[1])
        if not articles:
            raise nothing_read(sources, rejected)
        plan = plan_changes(previous.articles if previous else {}, articles)
        inputs = len(loaded[0]) + len(loaded[1]) + len(loaded[2])  # as the loader counted them
        outcome = _Outcome(mode, inputs, plan, tuple(loaded[2]), tuple(rejected), started)
        key = settings_key(settings)
        in_step = mode == "sync" and previous is not None and not plan.changed
        if in_step and previous is not None:
            check_build_files(backend, previous)  # "nothing to do" only for a sound index
            if previous.settings_key == key:
                return _unchanged(outcome, previous)
        model = embedder if isinstance(embedder, Embedder) else embedder()
        fingerprint = fingerprint_for(settings, model)
        if mode == "sync" and previous is not None:
            check_fingerprint(previous.fingerprint, fingerprint, syncing=True)
            if in_step:
                return _unchanged(outcome, previous)
        reuse = previous if mode == "sync" else None
        layering = _layering(backend, reuse, plan, articles)
        build_id = new_build_id()
        try:
            manifest, written = write_build(
                backend, build_id, settings, model, fingerprint, key, plan, reuse, layering, steps
            )
        except BaseException:  # the unfinished build goes now (or, if killed, next time)
            try:
                backend.remove_build(build_id)
            except Exception as e:
                log.warning("could not remove the unfinished build %s: %s", build_id, e)
            raise
        backend.publish(build_id)
        backend.remove_builds(keep=set(manifest.builds_read()))
        return outcome.report(
            build_id, True, written.embedded, manifest.chunks, written.copied, len(manifest.layers)
        )


def _keep_signatures(signatures: SignatureCache, layout: IndexLayout) -> None:
    """Save the sources' signatures for the next run (a cache: failing to is no error)."""
    if not signatures.changed:
        return
    try:
        layout.root.mkdir(parents=True, exist_ok=True)
        signatures.save(layout.signatures_path)
    except OSError as e:
        log.warning("could not keep the articles' signatures for the next sync: %s", e)


@contextmanager
def write_errors(layout: IndexLayout) -> Iterator[None]:
    """A full disk or a read-only folder becomes an `IndexWriteError` that says what to do."""
    try:
        yield
    except OSError as e:
        raise IndexWriteError(
            f"Cannot write the index at {layout.root} ({e}). Free some disk space or make the "
            "folder writable, then run this again; the live index is unchanged."
        ) from e


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What a run found, waiting for what it wrote."""

    mode: Mode
    inputs: int
    plan: ChangePlan
    duplicates: tuple[Duplicate, ...]
    rejected: tuple[Rejection, ...]
    started: float

    def report(
        self,
        build_id: str,
        published: bool,
        embedded: int,
        total: int,
        rewritten: int = 0,
        layers: int = 0,
    ) -> IndexReport:
        plan = self.plan
        return IndexReport(
            mode=self.mode,
            inputs=self.inputs,
            added=tuple(a.id for a in plan.added),
            updated=tuple(a.id for _, a in plan.updated),
            unchanged=tuple(a.id for a in plan.unchanged),
            removed=plan.removed,
            duplicates=self.duplicates,
            rejected=self.rejected,
            chunks_embedded=embedded,
            chunks_copied=total - embedded,
            chunks_total=total,
            build_id=build_id,
            published=published,
            seconds=time.perf_counter() - self.started,
            chunks_rewritten=rewritten,
            layers=layers,
        )


def nothing_read(sources: Sequence[Path | str], rejected: Sequence[Rejection]) -> CiteqaIndexError:
    reasons = "; ".join(f"{r.origin}: {r.reason}" for r in rejected[:5])
    return CiteqaIndexError(
        f"No articles could be read from {', '.join(map(str, sources)) or 'the input'}"
        + (f" ({reasons})" if reasons else "")
        + ". Point --source at a folder of .txt, .md, .html, .pdf or .jsonl articles, "
        "or at a URL; the index is unchanged."
    )


def _previous_manifest(backend: Backend, live: str | None, mode: Mode) -> Manifest | None:
    """The live build's record. A sync needs it whole; a rebuild only compares against it for
    the report, so it does without a damaged one."""
    if live is None:
        return None
    try:
        if backend.layout.manifest_path(live).exists():
            return load_manifest(backend.layout.manifest_path(live))
        # A server build made on another machine, or a lost record (reported as damaged).
        return open_manifest(backend, live, backend.open_collection(live)[1])
    except IndexDamagedError:
        if mode == "sync":
            raise
        log.warning("the live build %s is damaged; rebuilding without it", live)
        return None


@dataclass(frozen=True, slots=True)
class _Written:
    """What a writer put into its build: chunks embedded, and reused chunks copied in."""

    embedded: int
    copied: int


def write_build(
    backend: Backend,
    build_id: str,
    settings: IndexSettings,
    embedder: Embedder,
    fingerprint: IndexFingerprint,
    key: str,
    plan: ChangePlan,
    reuse: Manifest | None,
    layering: LayerPlan | None,
    steps: StepProgress | None,
) -> tuple[Manifest, _Written]:
    """Write and check a new build: every article (no `reuse`), the changed ones and the
    unchanged ones `reuse` holds, copied (no `layering`), or the changed ones and those
    `layering` copies, reading the rest from its layers. Its record, and what was written."""
    layers = layering.layers if layering is not None else ()
    writer = BuildWriter(backend, build_id, fingerprint, layers)
    try:
        entries: dict[str, ArticleEntry] = {}
        to_embed = [*plan.added, *(a for _, a in plan.updated)]
        copied: list[Chunk] = []
        if reuse is None:
            to_embed = [*plan.unchanged, *to_embed]
        else:
            kept = layering.kept if layering is not None else {}
            to_copy = [a for a in plan.unchanged if a.id not in kept]
            copied = copy_unchanged(backend, reuse, to_copy, writer, steps)
            for article in plan.unchanged:
                entry = reuse.articles[article.id]
                entries[article.id] = _entry(article, entry.chunk_ids, kept.get(article.id, ""))
        embedded = embed_articles(settings, embedder, fingerprint, to_embed, writer, steps)
        for article in to_embed:
            entries[article.id] = _entry(article, [c.id for c in embedded[article.id]])
        own = copied + [c for article in to_embed for c in embedded[article.id]]
        keyword_dir = backend.layout.keyword_dir(build_id)
        save_keyword_index(build_keyword_index(own, settings.embed_titles), keyword_dir)
        # The checks a reader makes, before anyone can read it.
        writer.verify([c.id for c in own])
        load_keyword_index(keyword_dir, len(own))
        manifest = Manifest(
            build_id,
            writer.built_at,
            fingerprint,
            entries,
            key,
            layers,
            days_indexed=True,
            texts_apart=writer.texts_apart,
        )
        if manifest.own_chunks != len(own):
            raise IndexDamagedError(f"The new build lists {manifest.own_chunks} of {len(own)}")
        save_manifest(manifest, backend.layout.manifest_path(build_id))
    finally:
        writer.close()
    return manifest, _Written(len(own) - len(copied), len(copied))


def _layering(
    backend: Backend, reuse: Manifest | None, plan: ChangePlan, articles: Sequence[Article]
) -> LayerPlan | None:
    """The layers a sync's build reads, or None to write every chunk into it: for a rebuild, or
    a live build whose chunks lack their publication days."""
    if reuse is None or not reuse.days_indexed:
        return None
    layering = plan_layers(reuse, plan, {a.id: a.origin for a in articles})
    if layering is not None:
        # A build goes on being read by the next: a damaged one is not built upon. (A complete
        # build's copy opens the live one, with a reader's checks.)
        check_build_files(backend, reuse, thorough=False)
    return layering


def copy_unchanged(
    backend: Backend,
    reuse: Manifest,
    unchanged: Sequence[Article],
    writer: BuildWriter,
    steps: StepProgress | None,
) -> list[Chunk]:
    """Copy the unchanged articles' chunks, vectors included, from the live build."""
    origins = {a.id: a.origin for a in unchanged}
    wanted = [c for a in unchanged for c in reuse.articles[a.id].chunk_ids]
    copied: list[Chunk] = []
    if not wanted:
        return copied
    store = Store(backend)
    try:
        if store.build_id != reuse.build_id:
            raise IndexDamagedError("The live build changed during the sync; run it again")
        for page in store.export(wanted):
            items = [reorigin(s, origins[s.chunk.article_id]) for s in page]
            writer.add(items)
            copied.extend(s.chunk for s in items)
            if steps is not None:
                steps(COPYING, len(copied), len(wanted))
    finally:
        store.close()
    return copied


def embed_articles(
    settings: IndexSettings,
    embedder: Embedder,
    fingerprint: IndexFingerprint,
    articles: Sequence[Article],
    writer: BuildWriter,
    steps: StepProgress | None,
) -> dict[str, list[Chunk]]:
    """Chunk and embed `articles` into the new build; their chunks by article id."""
    by_article, pending = chunk_articles(settings, embedder, fingerprint, articles)
    metadata = {a.id: (a.content_hash, a.origin) for a in articles}

    def progress(done: int, total: int) -> None:
        if steps is not None:
            steps(EMBEDDING, done, total)

    for batch, vectors in embed_batches(
        embedder, pending, settings.embed_batch_size, settings.embed_titles, progress
    ):
        writer.add(
            [
                StoredChunk(chunk, vector, record_metadata(chunk, *metadata[chunk.article_id]))
                for chunk, vector in zip(batch, vectors, strict=True)
            ]
        )
    return by_article


def chunk_articles(
    settings: IndexSettings,
    embedder: Embedder,
    fingerprint: IndexFingerprint,
    articles: Sequence[Article],
) -> tuple[dict[str, list[Chunk]], list[Chunk]]:
    """The chunks of each article by id, and every distinct chunk in order (what is embedded)."""
    by_article: dict[str, list[Chunk]] = {}
    pending: list[Chunk] = []
    seen: set[str] = set()
    for article in articles:
        # With titles embedded, the title's word pieces come out of each chunk's budget.
        title_tokens = embedder.count_tokens(article.title) + 1 if settings.embed_titles else 0
        kept = by_article.setdefault(article.id, [])
        # A passage repeated within an article (a 100,000-character line of one letter gives
        # hundreds) is kept once: many identical vectors cut the HNSW graph apart, and a build
        # then failed its probe query.
        texts: set[str] = set()
        for chunk in chunk_article(
            article,
            max_tokens=max(32, fingerprint.chunk_tokens - title_tokens),
            overlap_tokens=settings.chunk_overlap_tokens,
            count_tokens=embedder.count_tokens,
        ):
            if chunk.id not in seen and chunk.text not in texts:
                seen.add(chunk.id)
                texts.add(chunk.text)
                kept.append(chunk)
                pending.append(chunk)
    return by_article, pending


def embed_batches(
    embedder: Embedder,
    chunks: Sequence[Chunk],
    batch_size: int,
    with_titles: bool = False,
    progress: ProgressCallback | None = None,
) -> Iterator[tuple[Sequence[Chunk], list[list[float]]]]:
    """Yield `(chunks, vectors)` batch by batch, reporting progress after each. Longest texts
    first: the model pads each batch to its longest text, so batches of similar lengths waste
    least (in article order, 0.85x of the model's rate over the same chunks sorted)."""
    if progress is not None:
        progress(0, len(chunks))
    texts = [searchable_text(c, with_titles) for c in chunks]
    order = sorted(range(len(chunks)), key=lambda i: -len(texts[i]))
    for begin in range(0, len(order), batch_size):
        rows = order[begin : begin + batch_size]
        wait_while_answering()  # an answer being written gets the cores first
        yield [chunks[i] for i in rows], embedder.embed_documents([texts[i] for i in rows])
        if progress is not None:
            progress(begin + len(rows), len(chunks))


def _entry(article: Article, chunk_ids: Sequence[str], layer: str = "") -> ArticleEntry:
    return ArticleEntry(
        article.content_hash, article.origin, article.source, tuple(chunk_ids), layer
    )


def _unchanged(outcome: _Outcome, previous: Manifest) -> IndexReport:
    """The report of a sync that found nothing to do."""
    return outcome.report(previous.build_id, False, 0, previous.chunks, 0, len(previous.layers))


def _unique_ids(
    articles: Sequence[Article], rejected: Sequence[Rejection]
) -> tuple[list[Article], list[Rejection]]:
    """The first article of each id; later ones are rejected (an id names one article)."""
    first: dict[str, Article] = {}
    out_rejected = list(rejected)
    for article in articles:
        if article.id in first:
            reason = f"the id {article.id!r} is already used by {first[article.id].origin}"
            out_rejected.append(Rejection(article.origin, reason))
        else:
            first[article.id] = article
    return list(first.values()), out_rejected


def _as_sources(source: Path | str | Sequence[Path | str]) -> list[Path | str]:
    return [source] if isinstance(source, Path | str) else list(source)


def _open(settings: IndexSettings) -> Store:
    return open_store(settings.index_dir, settings.collection, settings.chroma_url)
