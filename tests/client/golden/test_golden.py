"""Golden parity: every case the ``adapters`` library 1.3.0 wrote is reproduced by OUR library within 1e-5.

Runs in both virtualenvs (transformers 5.x in .venv, 4.57 in .venv-ref) and never imports ``adapters``.
Regenerate the cases (reference virtualenv, from the repository root; see docs/golden-parity.md):

    .venv-ref/bin/python -m tests.client.golden.make_golden
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from . import CASES_DIR, build_ours, case_dirs, case_id, compare, read_case, run_ours

ARCHS = ("bert", "roberta", "xlm-roberta", "distilbert", "gpt2", "electra")
ENCODERS = ("bert", "roberta", "xlm-roberta", "distilbert", "electra")
ATTENTION = ("eager", "sdpa")
ATTENTION_OF = {"electra": ("eager",),  # transformers 4.57 has no sdpa for it (test_arch_rows.py checks ours)
                "deberta-v2": ("eager",),  # eager is its only attention on both lines
                "t5": ("eager",)}  # transformers 4.57 has no sdpa for T5 (test_arch_rows.py checks ours)
# archs added after the method rows above (their plain/methods/heads/compositions cases; the heads the library
# offers for each: DeBERTa-v2 has no causal LM head there)
LATER_ARCHS = {"deberta-v2": ("classification", "multilabel", "tagging", "question_answering", "multiple_choice",
                              "masked_lm"),
               "llama": ("classification", "multilabel", "tagging", "question_answering", "causal_lm")}
NO_PROMPT_TUNING = ("gpt2", "llama")  # the library refuses prompt tuning there (make_golden.SKIPPED checks it)
METHODS = ("seq_bn", "double_seq_bn", "par_bn", "scaled_par_bn", "lora", "ia3", "prefix_tuning", "prompt_tuning")
HEADS_ALL = ("classification", "multilabel", "tagging", "question_answering", "causal_lm")
HEADS_ENCODER = ("multiple_choice", "masked_lm")
COMPOSITIONS = ("stack", "fuse", "parallel", "batchsplit", "average", "average-adapter", "adapterdrop")
# rows added later, each with the cases it must have (what the library does not offer or fails on there is
# refused by ours with a typed error; docs/engine-status.md): methods, heads, compositions
_BN = ("seq_bn", "double_seq_bn", "par_bn", "scaled_par_bn", "seq_bn_inv", "double_seq_bn_inv", "compacter",
       "compacter++", "lora", "ia3")
_REFT = ("loreft", "noreft", "direft")
_COMPOSITIONS_NO_PARALLEL = tuple(c for c in COMPOSITIONS if c != "parallel")  # the library refuses it there
NEW_ROWS = {
    "mistral": (_BN + _REFT + ("dora", "prefix_tuning", "seq_bn_mh"),
                ("classification", "multilabel", "tagging", "question_answering", "causal_lm"), COMPOSITIONS),
    # reached in the library through its plugin interfaces (no prefix or prompt tuning there)
    "qwen2": (_BN + _REFT + ("dora", "seq_bn_mh"), ("classification", "tagging", "question_answering", "causal_lm"),
              _COMPOSITIONS_NO_PARALLEL),
    "modernbert": (_BN + _REFT + ("seq_bn_mh",), ("classification", "tagging", "question_answering", "masked_lm"),
                   _COMPOSITIONS_NO_PARALLEL),
    "bart": (_BN + ("dora", "vera", "dvora", "prefix_tuning"),
             ("classification", "multilabel", "question_answering", "seq2seq_lm"), COMPOSITIONS),
    "t5": (tuple(m for m in _BN if not m.endswith("_inv")) + ("dora", "vera", "dvora", "prefix_tuning"),
           ("classification", "multilabel", "question_answering", "seq2seq_lm"), COMPOSITIONS),
}
REFT_ARCHS = ARCHS + tuple(LATER_ARCHS) + ("mistral", "qwen2", "modernbert")  # not on the encoder-decoders
UNION_CASES = ("seq_bn-par_bn", "lora_gated", "ia3_gated", "seq_bn_gated")  # a union, and gating per method
# cases with a prefix: where the library's sdpa prefix path is right (the others are checked in tests/parity)
PREFIX_UNION_ARCHS = ("bert", "roberta", "xlm-roberta", "electra", "deberta-v2")
PREFIX_UNION_CASES = ("unipelt", "prefix_tuning-par_bn", "prefix_tuning_gated")
# AdapterPlus (stochastic depth: the identity in eval mode); the interface rows refuse original_ln_after=False
ADAPTER_PLUS_ARCHS = ("bert", "roberta", "xlm-roberta", "distilbert", "gpt2", "electra", "deberta-v2", "llama",
                      "mistral", "bart", "t5")
# MTL-LoRA (two task adapters sharing A/B, MultiTask routed by task_ids; DeBERTa-v2: one adapter, no MultiTask):
# not on GPT-2 (fused c_attn: the library fails in the forward pass) nor on the plugin-interface rows
MTL_LORA_ARCHS = ("bert", "roberta", "xlm-roberta", "distilbert", "electra", "deberta-v2", "llama", "mistral", "bart",
                  "t5")
DOC = Path(__file__).resolve().parents[3] / "docs" / "golden-parity.md"
CASES = case_dirs()


def required_ids() -> set:
    """The case ids the suite must hold (independent of the generator, so it cannot shrink silently)."""
    bases = [f"plain/{arch}" for arch in ARCHS]
    bases += [f"methods/{arch}-{method}" for arch in ARCHS for method in METHODS
              if (arch, method) != ("gpt2", "prompt_tuning")]  # the library has no prompt tuning on GPT-2
    # DoRA / VeRA / DVoRA: the library fails on GPT-2's fused c_attn (make_golden.SKIPPED checks it; ours refuses)
    bases += [f"methods/{arch}-{method}" for arch in ARCHS if arch != "gpt2" for method in ("dora", "vera", "dvora")]
    # invertible adapters (checked through a causal LM head: forward and inverse) and Compacter, on every arch
    bases += [f"methods/{arch}-{method}" for arch in ARCHS
              for method in ("seq_bn_inv", "double_seq_bn_inv", "compacter", "compacter++")]
    bases += [f"heads/{arch}-{kind}" for arch in ARCHS for kind in HEADS_ALL]
    bases += [f"heads/{arch}-{kind}" for arch in ENCODERS for kind in HEADS_ENCODER]
    bases += [f"compositions/{arch}-{name}" for arch in ARCHS for name in COMPOSITIONS]
    for arch, heads in LATER_ARCHS.items():
        bases += [f"plain/{arch}"] + [f"methods/{arch}-{method}" for method in METHODS
                                      if (method != "prompt_tuning" or arch not in NO_PROMPT_TUNING)]
        bases += [f"heads/{arch}-{kind}" for kind in heads] + [f"compositions/{arch}-{name}" for name in COMPOSITIONS]

    bases += [f"methods/{arch}-{method}" for arch in REFT_ARCHS for method in ("loreft", "noreft", "direft")]
    bases += [f"methods/{arch}-{case}" for arch in ARCHS + tuple(LATER_ARCHS) for case in UNION_CASES]
    bases += [f"methods/{arch}-{case}" for arch in PREFIX_UNION_ARCHS for case in PREFIX_UNION_CASES]
    bases += [f"methods/{arch}-prefix_tuning_gated" for arch in ("bart", "t5")]  # a gate per attention with a prefix
    bases += [f"methods/{arch}-adapter_plus" for arch in ADAPTER_PLUS_ARCHS]
    bases += [f"methods/{arch}-mtl_lora" for arch in MTL_LORA_ARCHS]
    for arch, (methods, heads, compositions) in NEW_ROWS.items():
        bases += [f"plain/{arch}"] + [f"methods/{arch}-{method}" for method in methods]
        bases += [f"heads/{arch}-{kind}" for kind in heads] + [f"compositions/{arch}-{name}" for name in compositions]

    def arch_of(base: str) -> str:  # the longest arch name the case name starts with ("xlm-roberta", not "roberta")
        name = base.split("/")[1]
        return max((a for a in ARCHS + tuple(LATER_ARCHS) + tuple(NEW_ROWS) if name == a or name.startswith(f"{a}-")),
                   key=len)

    return {f"{base}/{attn}" for base in bases for attn in ATTENTION_OF.get(arch_of(base), ATTENTION)}


def test_every_required_case_exists():
    present = {case_id(folder) for folder in CASES}
    assert CASES, f"no golden cases under {CASES_DIR}"
    missing = sorted(required_ids() - present)
    assert not missing, f"{len(missing)} golden cases missing, e.g. {missing[:5]}"
    assert len(present) >= 736


def test_cases_describe_themselves():
    """Every case names its backbone, attention, adapters and outputs; notes are documented in the doc."""
    documented = DOC.read_text(encoding="utf-8")
    for folder in CASES:
        meta = json.loads((folder / "case.json").read_text(encoding="utf-8"))
        assert meta["attn_implementation"] == folder.name
        assert (folder / meta["backbone"] / "model.safetensors").is_file(), case_id(folder)
        for relative in list(meta["adapters"].values()) + list(meta["fusions"].values()):
            assert (folder / relative).is_dir(), f"{case_id(folder)}: {relative} missing"
        assert meta["compare"], case_id(folder)
        if meta["library_wrong_under_sdpa"] or meta["library_fails_under_eager"]:
            assert meta["expected_from"] != "library sdpa", case_id(folder)
            assert case_id(folder.parent) in documented, f"{case_id(folder.parent)} not listed in {DOC.name}"


@pytest.mark.parametrize("folder", CASES, ids=case_id)
def test_golden_case(folder):
    meta, inputs, expected = read_case(folder)
    model = build_ours(folder, meta)
    compare(run_ours(model, inputs), expected, meta["compare"], meta["atol"])
