"""The record of one build: how it was made, and each article's content hash and chunk ids.

`sync` compares articles against it to embed only what is new or changed; `stats` reads its counts
instead of every chunk. It is written once, beside the build, before the build goes live.

A build written by a sync may hold only the chunks of what changed and read the rest from earlier
builds, its layers (`Layer`), minus the chunks it hides there; each article's entry names the build
holding its chunks. See docs/articles-and-index.md, "Sync in proportion to the change".
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index.layout import damaged, is_build_id, write_atomically

MANIFEST_VERSION = 2  # 2: layers; a build without them is written as 1, as before
READ_VERSIONS = (1, 2)
_PREFIX = "citeqa:"


@dataclass(frozen=True, slots=True)
class IndexFingerprint:
    """What an index was built with; an index is only usable with the same values."""

    embedding_model: str
    dimension: int
    chunk_tokens: int
    chunk_overlap_tokens: int
    chunker_version: str
    embed_titles: bool = False

    def to_metadata(self) -> dict[str, str | int | bool]:
        return {
            f"{_PREFIX}embedding_model": self.embedding_model,
            f"{_PREFIX}dimension": self.dimension,
            f"{_PREFIX}chunk_tokens": self.chunk_tokens,
            f"{_PREFIX}chunk_overlap_tokens": self.chunk_overlap_tokens,
            f"{_PREFIX}chunker_version": self.chunker_version,
            f"{_PREFIX}embed_titles": int(self.embed_titles),
        }

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> IndexFingerprint | None:
        try:
            return cls(
                embedding_model=str(meta[f"{_PREFIX}embedding_model"]),
                dimension=int(meta[f"{_PREFIX}dimension"]),
                chunk_tokens=int(meta[f"{_PREFIX}chunk_tokens"]),
                chunk_overlap_tokens=int(meta[f"{_PREFIX}chunk_overlap_tokens"]),
                chunker_version=str(meta[f"{_PREFIX}chunker_version"]),
                embed_titles=bool(meta.get(f"{_PREFIX}embed_titles", 0)),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def differences(self, expected: IndexFingerprint) -> str:
        """`name actual (settings say expected)` for every field that differs, comma-separated."""
        return ", ".join(
            f"{name} {getattr(self, name)!r} (settings say {getattr(expected, name)!r})"
            for name in IndexFingerprint.__slots__
            if getattr(self, name) != getattr(expected, name)
        )


@dataclass(frozen=True, slots=True)
class ArticleEntry:
    """One indexed article: what it was built from, and its chunks."""

    content_hash: str
    origin: str
    source: str | None
    chunk_ids: tuple[str, ...]
    layer: str = ""  # the build holding the chunks ("": the build this record belongs to)


@dataclass(frozen=True, slots=True)
class Layer:
    """An earlier build a build reads beside its own chunks: how many chunks it holds (checked at
    open) and those of them no longer in the index (left out of every search)."""

    build_id: str
    chunks: int
    hidden: frozenset[str] = frozenset()

    @property
    def live(self) -> int:
        return self.chunks - len(self.hidden)


@dataclass(frozen=True, slots=True)
class Manifest:
    """One build's record."""

    build_id: str
    built_at: str
    fingerprint: IndexFingerprint
    articles: Mapping[str, ArticleEntry]
    # The settings the fingerprint came from (see `index.fingerprint.settings_key`): equal keys mean
    # equal fingerprint, so a writer can tell that nothing changed without loading the model.
    settings_key: str = ""
    layers: tuple[Layer, ...] = ()  # earlier builds read beside this one's own, oldest first
    # Whether every chunk carries its publication day (builds before days were indexed do not;
    # a sync writes those anew rather than layer on them).
    days_indexed: bool = False
    # Whether the chunk texts are in the build's own file (`index.texts`), not Chroma documents.
    texts_apart: bool = False

    @property
    def chunks(self) -> int:
        """Chunks in the index: this build's own and its layers' not hidden."""
        return sum(len(entry.chunk_ids) for entry in self.articles.values())

    @property
    def own_chunks(self) -> int:
        """Chunks stored in this build's own collection."""
        return sum(
            len(entry.chunk_ids)
            for entry in self.articles.values()
            if self.holder(entry) == self.build_id
        )

    def holder(self, entry: ArticleEntry) -> str:
        """The id of the build holding `entry`'s chunks."""
        return entry.layer or self.build_id

    def builds_read(self) -> tuple[str, ...]:
        """Every build a reader of this one opens, oldest first, this one last."""
        return (*(layer.build_id for layer in self.layers), self.build_id)

    def sources(self) -> tuple[tuple[str, int], ...]:
        """(outlet, articles) pairs, most articles first."""
        counts: dict[str, int] = {}
        for entry in self.articles.values():
            source = entry.source or "(unknown)"
            counts[source] = counts.get(source, 0) + 1
        return tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def manifest_to_json(manifest: Manifest) -> str:
    record: dict[str, Any] = {
        "version": MANIFEST_VERSION if manifest.layers else 1,
        "build": manifest.build_id,
        "built_at": manifest.built_at,
        "fingerprint": dataclasses.asdict(manifest.fingerprint),
        "settings_key": manifest.settings_key,
        "days_indexed": manifest.days_indexed,
        "texts_apart": manifest.texts_apart,
        "articles": {
            article_id: _entry_record(entry) for article_id, entry in manifest.articles.items()
        },
    }
    if manifest.layers:
        record["layers"] = _layer_records(manifest.layers)
    return json.dumps(record, ensure_ascii=False)


def layers_to_json(layers: tuple[Layer, ...]) -> str:
    """`layers` as JSON, as a build record writes them (a server build keeps them in its
    collection's metadata: a reader on another machine has nothing else to learn them from)."""
    return json.dumps(_layer_records(layers))


def layers_from_json(text: str) -> tuple[Layer, ...]:
    """The layers in `text`; ValueError (or KeyError, TypeError) when they are not layers."""
    return _layers(json.loads(text))


def _layer_records(layers: tuple[Layer, ...]) -> list[dict[str, Any]]:
    return [
        {"build": layer.build_id, "chunks": layer.chunks, "hidden": sorted(layer.hidden)}
        for layer in layers
    ]


def _layers(records: Any) -> tuple[Layer, ...]:
    layers = tuple(
        Layer(str(layer["build"]), int(layer["chunks"]), frozenset(map(str, layer["hidden"])))
        for layer in records
    )
    if not all(is_build_id(layer.build_id) for layer in layers):
        raise ValueError("a layer names no build")
    return layers


def _entry_record(entry: ArticleEntry) -> dict[str, Any]:
    record: dict[str, Any] = {
        "hash": entry.content_hash,
        "origin": entry.origin,
        "source": entry.source,
        "chunks": list(entry.chunk_ids),
    }
    if entry.layer:
        record["layer"] = entry.layer
    return record


def manifest_from_json(text: str) -> Manifest:
    """The manifest in `text`; ValueError (or KeyError, TypeError) when it is not one."""
    raw = json.loads(text)
    if raw.get("version") not in READ_VERSIONS:
        raise ValueError(f"unknown manifest version {raw.get('version')!r}")
    manifest = Manifest(
        build_id=str(raw["build"]),
        built_at=str(raw["built_at"]),
        fingerprint=IndexFingerprint(**raw["fingerprint"]),
        settings_key=str(raw.get("settings_key", "")),
        days_indexed=bool(raw.get("days_indexed", False)),
        texts_apart=bool(raw.get("texts_apart", False)),
        articles={
            str(article_id): ArticleEntry(
                content_hash=str(entry["hash"]),
                origin=str(entry["origin"]),
                source=None if entry["source"] is None else str(entry["source"]),
                chunk_ids=tuple(str(c) for c in entry["chunks"]),
                layer=str(entry.get("layer", "")),
            )
            for article_id, entry in raw["articles"].items()
        },
        layers=_layers(raw.get("layers", ())),
    )
    builds = set(manifest.builds_read())
    distinct = len(builds) == len(manifest.layers) + 1
    if not distinct:
        raise ValueError("the record's layers are not distinct builds")
    if any(manifest.holder(entry) not in builds for entry in manifest.articles.values()):
        raise ValueError("an article's chunks are in a build the record does not read")
    return manifest


def save_manifest(manifest: Manifest, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, manifest_to_json(manifest))


def load_manifest(path: Path) -> Manifest:
    """The manifest at `path`; `IndexDamagedError` when it is missing or damaged."""
    try:
        return manifest_from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise damaged(f"The build record {path} is missing") from e
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise damaged(f"The build record {path} is damaged ({e.__class__.__name__})") from e
