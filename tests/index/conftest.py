"""Index fixtures: small corpora, a real Chroma server, and settings for both store modes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from index.config import IndexSettings
from index.embeddings import Embedder
from index.layout import IndexLayout, read_pointer
from index.manifest import load_manifest
from tests.support.factories import article_text
from tests.support.servers import free_port, stop_process

CHROMA = Path(sys.executable).parent / "chroma"

# Short articles with words no other article has, so each is found by exactly one query.
ARTICLES = {
    "harbour.txt": (
        "Lindholm harbour reopens after the storm",
        "The harbour of Lindholm reopened on Monday after a week of repairs. Ferries to the "
        "outer islands run again from Friday, the port authority said.",
    ),
    "zeppelin.txt": (
        "Zeppelin museum doubles its visitors",
        "The zeppelin museum in Friedrichshafen counted twice as many visitors this summer. "
        "Its new hangar shows a restored gondola from 1936.",
    ),
    "orchard.txt": (
        "Cider orchards bloom early",
        "Cider orchards in Herefordshire blossomed three weeks early this spring. Growers fear "
        "a late frost could ruin the apple harvest.",
    ),
}
RECORDS = [
    {
        "id": "wire-1",
        "title": "Glacier retreat measured by drones",
        "text": "Drones mapped the Rhone glacier and found it lost forty metres of ice in a "
        "year, researchers in Zurich reported.",
        "source": "Alpine Wire",
    },
    {
        "id": "wire-2",
        "title": "Chess olympiad opens in Budapest",
        "text": "The chess olympiad opened in Budapest with teams from 180 countries. The "
        "defending champions play their first round on Sunday.",
        "source": "Alpine Wire",
    },
]


def write_article(folder: Path, name: str, title: str, text: str) -> Path:
    path = folder / name
    path.write_text(f"{title}\n\n{text}\n", encoding="utf-8")
    return path


def write_reports(corpus: Path, numbers: range, version: int = 0) -> None:
    """Generated articles `a<number>.txt`, "Report <number>", five sentences each (`version`:
    another text for the same file)."""
    for number in numbers:
        rng = random.Random(number * 100 + version)
        write_article(corpus, f"a{number:03d}.txt", f"Report {number}", article_text(rng, 5))


def write_records(path: Path, records: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """Three .txt articles and a .jsonl file of two records with ids: five articles."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, (title, text) in ARTICLES.items():
        write_article(folder, name, title, text)
    write_records(folder / "wire.jsonl", RECORDS)
    return folder


class CountingEmbedder(Embedder):
    """The real model, recording every text it embeds (to prove what was not re-embedded)."""

    def __init__(self, real: Embedder) -> None:
        super().__init__(real.engine, real.name, real.count_tokens, real.batch_size)
        self.embedded: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedded.extend(texts)
        return super().embed_documents(texts)


@pytest.fixture
def counting_embedder(embedder: Embedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Chroma server (`chroma run`) on a free loopback port, telemetry off."""
    data = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    log_path = data.parent / "chroma-server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [CHROMA, "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chroma run did not start: {log_path.read_text(errors='replace')}")
            time.sleep(0.2)
        yield url
    finally:
        stop_process(server, timeout_s=10)


@pytest.fixture(params=["local", "server"])
def index_settings(request: pytest.FixtureRequest, tmp_path: Path) -> IndexSettings:
    """Settings for a fresh index, in a local directory or on the Chroma server (a collection
    name of its own per test, as the server is shared by the session)."""
    url = request.getfixturevalue("chroma_server") if request.param == "server" else None
    return IndexSettings(
        index_dir=tmp_path / "idx",
        collection=f"t{uuid.uuid4().hex[:12]}",
        chroma_url=url,
    )


def layout_of(settings: IndexSettings) -> IndexLayout:
    return IndexLayout(settings.index_dir, settings.collection)


def builds_in_use(layout: IndexLayout) -> list[str]:
    """The builds the live one reads (its layers and itself), sorted: all a writer leaves."""
    live = read_pointer(layout)
    return sorted(load_manifest(layout.manifest_path(live)).builds_read()) if live else []
