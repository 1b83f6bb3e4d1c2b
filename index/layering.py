"""Which earlier builds a sync's new build reads, and what it copies: the policy that keeps a
sync's cost in proportion to the change (docs/articles-and-index.md, "Sync in proportion to the
change").

A sync writes only the new and changed articles into its build. The unchanged ones stay in the
builds that hold them, its layers, each with the chunks of removed or changed articles hidden.
Layers are merged when there are too many (every search asks each one) or when one is mostly
hidden (its space and search time go to nothing): the newer ones are copied into the new build,
and the oldest, the base, is written anew with the rest only when half of it is hidden. Pure
functions over records; nothing here reads or writes a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from index.manifest import Layer, Manifest
from index.plan import ChangePlan

MAX_LAYERS = 8  # builds a search asks, the new build included
MAX_HIDDEN_SHARE = 0.5  # of a layer's chunks; past it the layer is merged away


@dataclass(frozen=True, slots=True)
class LayerPlan:
    """How a sync's build is made: the layers it reads (oldest first), the unchanged articles it
    copies into itself (moved files, merged layers), and where the others stay."""

    layers: tuple[Layer, ...]
    copy: tuple[str, ...]  # article ids
    kept: Mapping[str, str]  # article id -> the build holding its chunks


def plan_layers(
    previous: Manifest,
    plan: ChangePlan,
    origins: Mapping[str, str],
    max_layers: int = MAX_LAYERS,
    max_hidden_share: float = MAX_HIDDEN_SHARE,
) -> LayerPlan | None:
    """The layers for a sync of `plan` over the live build `previous` (`origins`: each unchanged
    article's origin now); None when the whole index is better written anew."""
    layers = [*previous.layers, Layer(previous.build_id, previous.own_chunks)]
    moved = [a.id for a in plan.unchanged if origins[a.id] != previous.articles[a.id].origin]
    leaving = [*plan.removed, *(old for old, _ in plan.updated), *moved]
    hidden = {layer.build_id: set(layer.hidden) for layer in layers}
    for article_id in leaving:
        entry = previous.articles[article_id]
        hidden[previous.holder(entry)].update(entry.chunk_ids)
    layers = [
        Layer(layer.build_id, layer.chunks, frozenset(hidden[layer.build_id]))
        for layer in layers
        if layer.chunks > len(hidden[layer.build_id])
    ]
    if not layers:
        return LayerPlan((), tuple(moved), {})
    base, upper = layers[0], layers[1:]
    if share_hidden(base) > max_hidden_share:
        return None
    merged = {
        layer.build_id
        for layer in upper
        if len(upper) + 2 > max_layers or share_hidden(layer) > max_hidden_share
    }
    kept: dict[str, str] = {}
    copy = list(moved)
    for article in plan.unchanged:
        if article.id in moved:
            continue
        entry = previous.articles[article.id]
        holder = previous.holder(entry)
        if not entry.chunk_ids:  # nothing stored (its passages all repeat other articles')
            continue
        if holder in merged:
            copy.append(article.id)
        else:
            kept[article.id] = holder
    return LayerPlan(
        (base, *(layer for layer in upper if layer.build_id not in merged)), tuple(copy), kept
    )


def share_hidden(layer: Layer) -> float:
    return len(layer.hidden) / layer.chunks if layer.chunks else 0.0
