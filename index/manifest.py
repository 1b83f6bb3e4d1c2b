"""The record of one build: how it was made, and each article's content hash and chunk ids.

`sync` compares articles against it to embed only what is new or changed; `stats` reads its counts
instead of every chunk. It is written once, beside the build, before the build goes live.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index.layout import damaged, write_atomically

MANIFEST_VERSION = 1
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

    @property
    def chunks(self) -> int:
        return sum(len(entry.chunk_ids) for entry in self.articles.values())

    def sources(self) -> tuple[tuple[str, int], ...]:
        """(outlet, articles) pairs, most articles first."""
        counts: dict[str, int] = {}
        for entry in self.articles.values():
            source = entry.source or "(unknown)"
            counts[source] = counts.get(source, 0) + 1
        return tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def manifest_to_json(manifest: Manifest) -> str:
    return json.dumps(
        {
            "version": MANIFEST_VERSION,
            "build": manifest.build_id,
            "built_at": manifest.built_at,
            "fingerprint": dataclasses.asdict(manifest.fingerprint),
            "settings_key": manifest.settings_key,
            "articles": {
                article_id: {
                    "hash": entry.content_hash,
                    "origin": entry.origin,
                    "source": entry.source,
                    "chunks": list(entry.chunk_ids),
                }
                for article_id, entry in manifest.articles.items()
            },
        },
        ensure_ascii=False,
    )


def manifest_from_json(text: str) -> Manifest:
    """The manifest in `text`; ValueError (or KeyError, TypeError) when it is not one."""
    raw = json.loads(text)
    if raw.get("version") != MANIFEST_VERSION:
        raise ValueError(f"unknown manifest version {raw.get('version')!r}")
    return Manifest(
        build_id=str(raw["build"]),
        built_at=str(raw["built_at"]),
        fingerprint=IndexFingerprint(**raw["fingerprint"]),
        settings_key=str(raw.get("settings_key", "")),
        articles={
            str(article_id): ArticleEntry(
                content_hash=str(entry["hash"]),
                origin=str(entry["origin"]),
                source=None if entry["source"] is None else str(entry["source"]),
                chunk_ids=tuple(str(c) for c in entry["chunks"]),
            )
            for article_id, entry in raw["articles"].items()
        },
    )


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
