"""AdapterPlus and MTL-LoRA against the adapters library itself (reference virtualenv only)."""

from __future__ import annotations

import pytest
import torch

from tests.client.golden.make_golden import stochastic_depth_without_torchvision
from tests.client.test_methods_inv_compacter import GOLDEN


def _library():
    import adapters  # the reference virtualenv: a missing library is a failure, not a skip

    stochastic_depth_without_torchvision()  # adapters 1.3.0 imports torchvision for stochastic_depth > 0
    return adapters


def test_configs_serialise_like_the_library():
    adapters = _library()
    from adapters_client.configs import AdapterPlusConfig, load_config

    theirs = adapters.AdapterPlusConfig().to_dict()
    ours = AdapterPlusConfig().to_dict()
    assert {k: v for k, v in theirs.items() if k != "architecture"} == ours
    assert load_config(theirs).to_dict() == ours  # the library's dict reads back as the same config
    mtl = adapters.MTLLoRAConfig().to_dict()
    assert load_config("mtl_lora").to_dict() == mtl
    assert load_config(mtl).to_dict() == mtl


def _randomised_library(adapters, arch: str, config):
    library = adapters.AutoAdapterModel.from_pretrained(str(GOLDEN / arch))
    library.add_adapter("p", config=config)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, param in library.named_parameters():
            if ".p." in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    library.set_active_adapters("p")
    return library.eval()


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama"])
def test_adapter_plus_files_match_the_library_both_ways(arch, tmp_path):
    adapters = _library()
    from adapters_client import AutoAdapterModel

    library = _randomised_library(adapters, arch, adapters.AdapterPlusConfig(reduction_factor=4))
    inputs = {"input_ids": torch.randint(3, 99, (3, 8), generator=torch.Generator().manual_seed(3))}
    with torch.no_grad():
        expected = library(**inputs)[0]
    library.save_adapter(str(tmp_path / "lib"), "p", with_head=False, use_safetensors=True)
    ours = AutoAdapterModel.from_pretrained(str(GOLDEN / arch)).eval()
    ours.load_adapter(str(tmp_path / "lib"), set_active=True)
    assert ours.adapter_engine.configs["p"].stochastic_depth == pytest.approx(0.1)
    with torch.no_grad():
        torch.testing.assert_close(ours(**inputs)[0], expected, rtol=0, atol=1e-5)
    ours.save_adapter(str(tmp_path / "ours"), "p")
    again = adapters.AutoAdapterModel.from_pretrained(str(GOLDEN / arch)).eval()
    again.load_adapter(str(tmp_path / "ours"), set_active=True, use_safetensors=True)
    with torch.no_grad():
        torch.testing.assert_close(again(**inputs)[0], expected, rtol=0, atol=1e-5)


def _train_adapters_only(model, classes) -> int:
    """Everything in eval mode but the adapter modules (so drop-path is the only random draw)."""
    model.eval()
    count = 0
    for module in model.modules():
        if isinstance(module, classes):
            module.train()
            count += 1
    return count


@pytest.mark.parametrize("parallel", [False, True])
def test_training_mode_drops_where_the_library_drops(parallel, tmp_path):
    """Same seed, same draws: the library's drop-path (before the scaling, per row, sequential adapters only) and
    ours give the same training-mode output; the parallel adapter never drops in either."""
    adapters = _library()
    from adapters.methods.modeling import Adapter

    from adapters_client import AutoAdapterModel
    from adapters_client.methods.bottleneck.modules import BottleneckAdapter

    config = adapters.AdapterPlusConfig(reduction_factor=4, stochastic_depth=0.5)
    if parallel:
        config = adapters.ParBnConfig(reduction_factor=4, stochastic_depth=0.5, scaling="channel")
    library = _randomised_library(adapters, "bert", config)
    library.save_adapter(str(tmp_path / "lib"), "p", with_head=False, use_safetensors=True)
    ours = AutoAdapterModel.from_pretrained(str(GOLDEN / "bert"))
    ours.load_adapter(str(tmp_path / "lib"), set_active=True)
    inputs = {"input_ids": torch.randint(3, 99, (16, 8), generator=torch.Generator().manual_seed(3))}
    with torch.no_grad():
        evaluated = library.eval()(**inputs)[0]
        assert _train_adapters_only(library, Adapter) and _train_adapters_only(ours, BottleneckAdapter)
        torch.manual_seed(21)
        theirs = library(**inputs)[0]
        torch.manual_seed(21)
        mine = ours(**inputs)[0]
    torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-5)
    if parallel:
        torch.testing.assert_close(theirs, evaluated, rtol=0, atol=1e-6)
    else:
        assert (theirs - evaluated).abs().max() > 1e-3


@pytest.mark.parametrize("arch", ["qwen2", "modernbert"])
def test_library_refuses_adapter_plus_on_the_interface_rows(arch):
    adapters = _library()
    import transformers

    from tests.client.golden.make_golden import backbone_model_or_path

    model = transformers.AutoModel.from_pretrained(backbone_model_or_path(arch))
    adapters.init(model)
    with pytest.raises(ValueError, match="original_ln_after"):
        model.add_adapter("p", config=adapters.AdapterPlusConfig())


def test_library_mtl_lora_linear_task_matrix_cannot_be_built():
    """Found while reading adapters 1.3.0: its TaskSpecificLinear never calls Module.__init__, so
    task_specific_matrix_type='linear' fails when the adapter is added (ours parses it; the engine refuses
    MTL-LoRA as a whole)."""
    adapters = _library()
    model = adapters.AutoAdapterModel.from_pretrained(str(GOLDEN / "bert"))
    with pytest.raises(Exception):
        model.add_adapter("m", config=adapters.MTLLoRAConfig(task_specific_matrix_type="linear"))
    model.add_adapter("s", config=adapters.MTLLoRAConfig())  # the default builds
