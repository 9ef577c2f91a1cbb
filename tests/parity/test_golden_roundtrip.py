"""Golden round trip (.venv-ref only): a golden case loaded into OUR library, saved by it, then loaded by the
``adapters`` library 1.3.0 must reproduce the golden output within 1e-5.

Covers every eager case and every sdpa case whose expected output is not the library's own sdpa output.
The cases come from ``.venv-ref/bin/python -m tests.client.golden.make_golden`` (docs/golden-parity.md).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

import adapters
import pytest
from adapters.composition import AdapterCompositionBlock

from tests.client.golden import build_ours, case_dirs, case_id, compare, read_case, rowwise, run_ours
from tests.client.golden.make_golden import stochastic_depth_without_torchvision

_TORCHVISION = ("torchvision", "torchvision.ops", "torchvision.ops.stochastic_depth")


@contextmanager
def _torchvision_stand_in(needed: bool):
    """adapters 1.3.0 needs torchvision for AdapterPlus (stochastic_depth > 0), which the reference virtualenv
    lacks: for those cases the library gets make_golden's stand-in (torchvision's documented semantics; eval
    mode: nothing), removed afterwards so no other test sees a torchvision."""
    present = {name for name in _TORCHVISION if name in sys.modules}
    if needed:
        stochastic_depth_without_torchvision()
    try:
        yield
    finally:
        for name in _TORCHVISION:
            if name not in present:
                sys.modules.pop(name, None)

ROUNDTRIP = [folder for folder in case_dirs()
             if folder.name == "eager" or read_case(folder)[0]["expected_from"] != "library sdpa"]


def _save_with_ours(model, meta: dict, out) -> tuple[list, list]:
    """OUR save_adapter for every adapter the setup uses (the averaged one instead of its sources)."""
    average = meta.get("average_adapter")
    names = [average["name"]] if average else list(meta["adapters"])
    for name in names:
        model.save_adapter(str(out / name), name, with_head=not meta.get("init_class"))  # init: the head is HF's
    fusions = list(meta["fusions"])
    for index, name in enumerate(fusions):
        model.save_adapter_fusion(str(out / f"fusion{index}"), name)
    return names, fusions


def _library_model(folder, meta: dict, out, names: list, fusions: list):
    """The library's model on the saved folders, in the attention mode its golden output came from."""
    attn = "eager" if meta["library_wrong_under_sdpa"] else meta["attn_implementation"]
    if meta["library_fails_under_eager"]:
        attn = "sdpa"
    if meta.get("library_class"):  # its plugin interface (Qwen2, ModernBERT): the transformers class, adapters.init
        import transformers

        model = getattr(transformers, meta["library_class"]).from_pretrained(str(folder / meta["backbone"]),
                                                                             attn_implementation=attn)
        adapters.init(model)
    else:
        model = adapters.AutoAdapterModel.from_pretrained(str(folder / meta["backbone"]), attn_implementation=attn)
    for name in names:
        assert model.load_adapter(str(out / name), use_safetensors=True) == name
    for index in range(len(fusions)):
        model.load_adapter_fusion(str(out / f"fusion{index}"), use_safetensors=True)
    setup = meta["setup"]
    if isinstance(setup, dict):
        setup = AdapterCompositionBlock.from_dict(setup)
    model.set_active_adapters(setup, skip_layers=meta["skip_layers"])
    if meta["active_head"] is not None:
        model.active_head = meta["active_head"]
    return model.eval()


def test_roundtrip_covers_every_family():
    families = {read_case(folder)[0]["family"] for folder in ROUNDTRIP}
    assert families == {"plain", "methods", "heads", "compositions"}
    assert len(ROUNDTRIP) >= 112 + 6  # every eager case + the sdpa cases with a note


@pytest.mark.parametrize("folder", ROUNDTRIP, ids=case_id)
def test_our_saved_case_reproduces_golden_in_library(folder, tmp_path):
    meta, inputs, expected = read_case(folder)
    ours = build_ours(folder, meta)
    names, fusions = _save_with_ours(ours, meta, tmp_path)
    with _torchvision_stand_in(meta.get("method") == "adapter_plus"):
        theirs = _library_model(folder, meta, tmp_path, names, fusions)
    if meta["library_fails_under_eager"]:
        got = rowwise(theirs, inputs)  # the way its golden output was made (see case.json "expected_from")
    else:
        got = run_ours(theirs, inputs)  # a plain eval-mode, no-grad forward pass, flattened
    compare(got, expected, meta["compare"], meta["atol"])
