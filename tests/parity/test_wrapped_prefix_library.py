"""HF classes that keep their base model under another attribute than the row's (``LlamaForQuestionAnswering`` and
``Qwen2ForQuestionAnswering``: ``transformer``), wrapped with ``init`` on both sides: the adapters library's files
load into ours with its outputs, ours into its model with ours, and both carry the same keys.

Reference virtualenv only (the ``adapters`` library is installed there).
"""

from __future__ import annotations

import adapters
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForQuestionAnswering

import adapters_client
from tests.client.engine_helpers import randomise, tiny_config

CONFIGS = {"seq_bn": "seq_bn", "lora": "lora", "double_seq_bn": "double_seq_bn"}


def _inputs():
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(3, 99, (3, 7), generator=generator)
    ids[1, 2] = 0  # a pad id inside the text
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0  # right padding
    mask[2, 3:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _qa(arch: str, wrap):
    torch.manual_seed(0)  # identical base weights and QA head on both sides
    config = tiny_config(arch)
    config._attn_implementation = "eager"
    model = AutoModelForQuestionAnswering.from_config(config).eval()
    wrap(model)
    return model


def _logits(model):
    with torch.no_grad():
        out = model(**_inputs())
    return torch.cat([out.start_logits, out.end_logits], dim=-1)


@pytest.mark.parametrize("method", sorted(CONFIGS))
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_library_files_load_into_ours(arch, method, tmp_path):
    theirs = _qa(arch, adapters.init)
    assert theirs.base_model_prefix == "transformer"
    theirs.add_adapter("x", config=CONFIGS[method])
    randomise([m for n, m in theirs.named_modules() if n.endswith(".x")], std=0.3)
    theirs.set_active_adapters("x")
    expected = _logits(theirs)
    theirs.save_adapter(str(tmp_path), "x")
    safe = tmp_path / "adapter.safetensors"
    keys = set(load_file(str(safe)) if safe.exists()
               else torch.load(str(tmp_path / "pytorch_adapter.bin"), weights_only=True))
    assert keys and all(key.startswith("transformer.") for key in keys)

    ours = _qa(arch, adapters_client.init)
    assert not torch.allclose(_logits(ours), expected, atol=1e-4)  # the adapter matters
    ours.load_adapter(str(tmp_path), set_active=True, allow_pickle=True)
    torch.testing.assert_close(_logits(ours), expected, atol=1e-5, rtol=0)

    ours.save_adapter(str(tmp_path / "ours"), "x", with_head=False)
    assert set(load_file(str(tmp_path / "ours" / "adapter.safetensors"))) == keys


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_our_files_load_into_the_library(arch, tmp_path):
    ours = _qa(arch, adapters_client.init)
    ours.add_adapter("x", config="seq_bn")
    randomise(ours.adapter_engine.modules_of("x"), std=0.3)
    ours.set_active_adapters("x")
    expected = _logits(ours)
    ours.save_adapter(str(tmp_path), "x", with_head=False)

    theirs = _qa(arch, adapters.init)
    theirs.load_adapter(str(tmp_path), set_active=True, use_safetensors=True)
    torch.testing.assert_close(_logits(theirs), expected, atol=1e-5, rtol=0)
