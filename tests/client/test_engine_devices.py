"""The engine on every available device and dtype: adapters follow the model's device/dtype; outputs agree."""

from __future__ import annotations

import pytest
import torch

from adapters_client import Fuse, Parallel
from tests.client.engine_helpers import randomise, tiny_inputs, tiny_model

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SETUPS = {
    "seq_bn": ("seq_bn[reduction_factor=4]", "m"),
    "lora": ("lora[intermediate_lora=True,attn_matrices=['q','k','v']]", "m"),
    "ia3": ("ia3", "m"),
    "prefix": ("prefix_tuning[prefix_length=3,bottleneck_size=8]", "m"),
    "prompt": ("prompt_tuning[prompt_length=2]", "m"),
    "parallel": ("seq_bn", Parallel("m", "n")),
    "fuse": ("seq_bn", Fuse("m", "n")),
}


def _build(spec, setup):
    model = tiny_model("bert")
    for i, name in enumerate(("m", "n")):
        model.add_adapter(name, config=spec)
        randomise(model.get_adapter(name), seed=i)
    if isinstance(setup, Fuse):
        model.add_adapter_fusion(setup)
        randomise(model.adapter_engine.fusion_modules(setup.name), seed=9)
    model.set_active_adapters(setup)
    return model


def _run(model, device):
    inputs = {k: v.to(device) for k, v in tiny_inputs().items()}
    with torch.no_grad():
        return model(**inputs)[0].float().cpu()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", sorted(SETUPS))
def test_outputs_agree_across_devices_and_dtypes(name, dtype, device, tmp_path):
    spec, setup = SETUPS[name]
    reference = _run(_build(spec, setup), "cpu")
    model = _build(spec, setup).to(device=device, dtype=dtype)
    tolerance = 1e-4 if dtype == torch.float32 else 8e-2
    torch.testing.assert_close(_run(model, device), reference, atol=tolerance, rtol=tolerance)
    # adapters added after moving the model land on its device and dtype
    model.add_adapter("late", config=spec)
    assert all(p.device.type == device and p.dtype == dtype
               for m in model.get_adapter("late") for p in m.parameters())
    model.save_adapter(str(tmp_path / "m"), "m")
    fresh = tiny_model("bert").to(device=device, dtype=dtype)
    fresh.load_adapter(str(tmp_path / "m"), set_active=True)
    assert _run(fresh, device).isfinite().all()


@pytest.mark.parametrize("device", DEVICES)
def test_merge_on_device(device):
    model = _build("lora[intermediate_lora=True]", "m").to(device)
    expected = _run(model, device)
    model.merge_adapter("m")
    torch.testing.assert_close(_run(model, device), expected, atol=1e-4, rtol=1e-4)
    model.reset_adapter()
