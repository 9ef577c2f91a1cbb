"""The Rotten Tomatoes corpus and the demo's fixed train / held-out split."""

import bz2
import csv
import json

import pytest

from demo import data


@pytest.fixture(scope="module")
def corpus():
    return data.load_corpus()


def _write_corpus(path, header, rows):
    with bz2.open(path, "wt", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_corpus_holds_labelled_distinct_snippets(corpus):
    assert len(corpus) > 12_000
    assert len({e.text for e in corpus}) == len(corpus)
    assert {e.label for e in corpus} == {0, 1}
    assert all(e.text and e.text == e.text.strip() for e in corpus)


def test_split_is_deterministic_disjoint_and_complete(corpus):
    first, second = data.split(corpus), data.split(corpus)
    assert [e.text for e in first.train] == [e.text for e in second.train]
    assert [e.text for e in first.held_out] == [e.text for e in second.held_out]
    train, held_out = {e.text for e in first.train}, {e.text for e in first.held_out}
    assert not train & held_out
    assert train | held_out == {e.text for e in corpus}


def test_split_is_stratified_and_sized(corpus):
    parts = data.demo_split()
    sizes = parts.sizes()
    for name in data.LABELS:
        total = sizes["train"][name] + sizes["held_out"][name]
        assert sizes["held_out"][name] == round(total * data.HELD_OUT_FRACTION)
    assert sizes["held_out"]["total"] + sizes["train"]["total"] == len(corpus)


def test_seed_changes_the_split(corpus):
    other = data.split(corpus, seed=data.SPLIT_SEED + 1)
    assert {e.text for e in other.held_out} != {e.text for e in data.split(corpus).held_out}


def test_export_writes_text_and_label_names(tmp_path):
    parts = data.demo_split()
    path = data.export_jsonl(parts.held_out, tmp_path / "eval" / "held_out.jsonl")
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len(parts.held_out)
    assert lines[0] == {"text": parts.held_out[0].text, "label": parts.held_out[0].label_name}
    assert {line["label"] for line in lines} == {"negative", "positive"}


def test_corpus_with_a_missing_column_is_refused(tmp_path):
    path = _write_corpus(tmp_path / "c.csv.bz2", ["category", "review"], [["fresh", "Great."]])
    with pytest.raises(data.DemoDataError) as info:
        data.load_corpus(path)
    assert info.value.code == "demo_corpus_columns"


def test_unknown_category_is_refused_and_plots_are_left_out(tmp_path):
    good = _write_corpus(tmp_path / "g.csv.bz2", ["category", "text"],
                         [["plot", "A synopsis."], ["fresh", "Great."], ["rotten", "Awful."], ["fresh", "Great."]])
    assert [(e.text, e.label_name) for e in data.load_corpus(good)] == [("Great.", "positive"), ("Awful.", "negative")]
    bad = _write_corpus(tmp_path / "b.csv.bz2", ["category", "text"], [["meh", "So-so."]])
    with pytest.raises(data.DemoDataError) as info:
        data.load_corpus(bad)
    assert info.value.code == "demo_corpus_labels"


def test_take_and_bad_fraction():
    examples = data.demo_split().train
    assert data.take(examples, 5) == examples[:5]
    with pytest.raises(data.DemoDataError):
        data.take(examples, 0)
    with pytest.raises(data.DemoDataError):
        data.split(examples, held_out_fraction=1.0)
