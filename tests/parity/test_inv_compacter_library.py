"""Invertible adapters and Compacter against the adapters library itself (reference virtualenv only)."""

from __future__ import annotations

import pytest
import torch

from tests.client.test_methods_inv_compacter import GOLDEN


def _library():
    import adapters  # the reference virtualenv: a missing library is a failure, not a skip

    return adapters


def test_library_glow_cannot_run():
    """Why ``inv_adapter='glow'`` is refused: the library's GLOW block fails on sequence embeddings."""
    adapters = _library()
    model = adapters.AutoAdapterModel.from_pretrained(str(GOLDEN / "bert"))
    model.add_adapter("g", config=adapters.SeqBnInvConfig(inv_adapter="glow"))
    model.set_active_adapters("g")
    with pytest.raises(Exception):
        model(torch.randint(3, 99, (2, 8)))


@pytest.mark.parametrize("options", [
    {}, {"shared_phm_rule": False}, {"factorized_phm_rule": True}, {"shared_W_phm": True},
    {"factorized_phm_W": False, "phm_bias": False}, {"phm_rank": 2}, {"inv_adapter": "nice",
                                                                      "inv_adapter_reduction_factor": 4},
])
@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_options_match_the_library_both_ways(arch, options, tmp_path):
    adapters = _library()
    from adapters_client import AutoAdapterModel

    config = adapters.CompacterConfig(reduction_factor=4, **options)
    library = adapters.AutoAdapterModel.from_pretrained(str(GOLDEN / arch))
    library.add_adapter("c", config=config)
    library.add_causal_lm_head("c")
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, param in library.named_parameters():
            if ".c." in name or "heads.c." in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    library.set_active_adapters("c")
    library.eval()
    inputs = {"input_ids": torch.randint(3, 99, (2, 8), generator=generator)}
    with torch.no_grad():
        expected = library(**inputs).logits
    library.save_adapter(str(tmp_path / "lib"), "c", use_safetensors=True)
    ours = AutoAdapterModel.from_pretrained(str(GOLDEN / arch)).eval()
    ours.load_adapter(str(tmp_path / "lib"), set_active=True)
    ours.active_head = "c"
    with torch.no_grad():
        assert torch.allclose(ours(**inputs).logits, expected, atol=1e-5)
    ours.save_adapter(str(tmp_path / "ours"), "c")
    again = adapters.AutoAdapterModel.from_pretrained(str(GOLDEN / arch)).eval()
    again.load_adapter(str(tmp_path / "ours"), set_active=True, use_safetensors=True)
    again.active_head = "c"
    with torch.no_grad():
        assert torch.allclose(again(**inputs).logits, expected, atol=1e-5)


SETUPS = {
    "stack": lambda c: c.Stack("a", "b"), "stack-plain-first": lambda c: c.Stack("p", "a"),
    "fuse": lambda c: c.Fuse("a", "b"), "parallel": lambda c: c.Parallel("a", "b"),
    "batchsplit": lambda c: c.BatchSplit("a", "b", batch_sizes=[1, 1]),
    "average": lambda c: c.Average("a", "b", weights=[0.3, 0.7]),
}


@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_compositions_match_the_library(arch, setup, tmp_path):
    """Which adapter's invertible block runs under each composition: the library's answer, both with and without
    an LM head (the inverse), adapters a/b with blocks (a: Compacter++ too), p without."""
    adapters = _library()
    from adapters import composition as lib

    from adapters_client import AutoAdapterModel
    from adapters_client import composition as ours_blocks

    configs = {"a": adapters.CompacterPlusPlusConfig(reduction_factor=4, inv_adapter="nice",
                                                     inv_adapter_reduction_factor=2),
               "b": adapters.SeqBnInvConfig(reduction_factor=8), "p": adapters.SeqBnConfig(reduction_factor=8)}
    library = adapters.AutoAdapterModel.from_pretrained(str(GOLDEN / arch))
    for name, config in configs.items():
        library.add_adapter(name, config=config)
    library.add_adapter_fusion(lib.Fuse("a", "b"))
    library.add_causal_lm_head("lm")
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, param in library.named_parameters():
            if any(f".{n}." in name for n in ("a", "b", "p", "a,b", "lm")):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    library.eval()
    for name in configs:
        library.save_adapter(str(tmp_path / name), name, with_head=False, use_safetensors=True)
    library.save_adapter_fusion(str(tmp_path / "fusion"), "a,b", use_safetensors=True)
    library.save_head(str(tmp_path / "lm"), "lm", use_safetensors=True)
    ours = AutoAdapterModel.from_pretrained(str(GOLDEN / arch)).eval()
    for name in configs:
        ours.load_adapter(str(tmp_path / name))
    ours.load_adapter_fusion(str(tmp_path / "fusion"))
    ours.load_head(str(tmp_path / "lm"))
    inputs = {"input_ids": torch.randint(3, 99, (2, 8), generator=generator)}
    library.set_active_adapters(SETUPS[setup](lib))
    ours.set_active_adapters(SETUPS[setup](ours_blocks))
    with torch.no_grad():
        for head in (None, "lm"):
            if setup in ("parallel", "batchsplit") and head is not None:
                continue  # one head per branch: the heads' own tests
            expected = library(**inputs, head=head)[0] if head else library.base_model(**inputs)[0]
            got = ours(**inputs, head=head)[0] if head else ours.base_model(**inputs)[0]
            assert torch.allclose(got, expected, atol=1e-5), (setup, head)


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_static_lm_models_match_the_library(arch, tmp_path):
    """``init(hf_lm_model)``: the block runs on the embeddings; the HF LM head is untouched (as in the library)."""
    adapters = _library()
    import transformers

    import adapters_client

    cls = transformers.BertForMaskedLM if arch == "bert" else transformers.GPT2LMHeadModel
    library = cls.from_pretrained(str(GOLDEN / arch))
    adapters.init(library)
    library.add_adapter("x", config="seq_bn_inv")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in library.named_parameters():
            if ".x." in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    library.set_active_adapters("x")
    library.eval()
    library.save_adapter(str(tmp_path / "x"), "x", with_head=False, use_safetensors=True)
    ids = torch.randint(3, 99, (2, 8), generator=generator)
    with torch.no_grad():
        expected = library(ids).logits
    ours = adapters_client.init(cls.from_pretrained(str(GOLDEN / arch)))
    backbone = {k: v for k, v in library.state_dict().items() if ".x." not in k}  # the LM head is not in the
    ours.load_state_dict(backbone, strict=False)  # backbone checkpoint: take the library model's random one
    ours.load_adapter(str(tmp_path / "x"), set_active=True)
    ours.eval()
    with torch.no_grad():
        got = ours(ids).logits
        assert torch.allclose(got, expected, atol=1e-5)
        ours.set_active_adapters(None)
        assert (ours(ids).logits - expected).abs().max() > 1e-3


