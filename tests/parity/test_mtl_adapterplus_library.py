"""AdapterPlus and MTL-LoRA (share_parameters, MultiTask with task_ids) against the adapters library itself
(reference virtualenv only)."""

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
    task_specific_matrix_type='linear' fails when the adapter is added (ours parses it and refuses it when added)."""
    adapters = _library()
    from adapters_client import AutoAdapterModel
    from adapters_client.errors import InvalidAdapterConfig

    model = adapters.AutoAdapterModel.from_pretrained(str(GOLDEN / "bert"))
    with pytest.raises(AttributeError, match="before Module.__init__"):
        model.add_adapter("m", config=adapters.MTLLoRAConfig(task_specific_matrix_type="linear"))
    model.add_adapter("s", config=adapters.MTLLoRAConfig())  # the default builds
    ours = AutoAdapterModel.from_pretrained(str(GOLDEN / "bert"))
    with pytest.raises(InvalidAdapterConfig) as info:
        ours.add_adapter("m", config="mtl_lora[task_specific_matrix_type='linear']")
    assert info.value.field == "task_specific_matrix_type"


# --- MTL-LoRA ------------------------------------------------------------------------------------------------
def _mtl_inputs(arch: str, batch: int = 4, left: bool = False) -> dict:
    """Rows of different lengths (right padding, or ``left``), a pad id inside text; encoder-decoders get decoder
    inputs."""
    from tests.client.golden.make_golden import make_inputs

    inputs = {k: v[:batch] for k, v in make_inputs(arch).items()}
    if left:
        inputs = {k: v.flip(1) if k in ("input_ids", "attention_mask") else v for k, v in inputs.items()}
    return inputs


def _library_tasks(adapters, arch: str, config, names=("a", "b", "c"), share: bool = True):
    library = adapters.AutoAdapterModel.from_pretrained(str(GOLDEN / arch))
    for name in names:
        library.add_adapter(name, config=config)
    if share:
        library.share_parameters(adapters.MultiTask(*names))
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for key, param in library.named_parameters():
            if ".loras." in key or ".shared_parameters." in key:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    library.set_active_adapters(adapters.MultiTask(*names))
    return library.eval()


def _first(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output.last_hidden_state


@pytest.mark.parametrize("init, gating", [("lora", False), ("bert", False), ("bert", True), ("ia3", False)])
def test_mtl_lora_seeded_initialisation_matches_the_library(init, gating):
    adapters = _library()
    from adapters_client import AutoAdapterModel

    config = dict(init_weights=init, init_weights_seed=5, n_up_projection=3, use_gating=gating, r=4)
    library = adapters.AutoAdapterModel.from_pretrained(str(GOLDEN / "bert"))
    library.add_adapter("t", config=adapters.MTLLoRAConfig(**config))
    ours = AutoAdapterModel.from_pretrained(str(GOLDEN / "bert"))
    torch.manual_seed(99)  # another global state: only the seed may decide
    ours.add_adapter("t", config=adapters.MTLLoRAConfig(**config).to_dict())
    theirs = {k: v for k, v in library.state_dict().items() if ".loras.t." in k}
    mine = {k: v for k, v in ours.state_dict().items() if ".loras.t." in k}
    assert sorted(mine) == sorted(theirs) and any(k.endswith(".weights") for k in mine)
    for key, value in theirs.items():
        assert torch.equal(mine[key], value), key


@pytest.mark.parametrize("arch", ["bert", "distilbert", "llama", "llama-left", "bart", "t5"])
def test_mtl_lora_multi_task_matches_the_library_both_ways(arch, tmp_path):
    """Three tasks sharing A and B, interleaved task ids (tensor and names), padded rows of mixed lengths; the
    library's saved folders loaded by ours and ours by the library."""
    adapters = _library()
    from adapters_client import AutoAdapterModel, MultiTask

    arch, left = arch.removesuffix("-left"), arch.endswith("-left")
    library = _library_tasks(adapters, arch, adapters.MTLLoRAConfig(n_up_projection=2, r=4))
    inputs = _mtl_inputs(arch, left=left)
    routings = [torch.tensor([2, 0, 1, 0]), ["b", "c", "a", "b"]]
    with torch.no_grad():
        expected = [_first(library(**inputs, task_ids=ids)) for ids in routings]
    assert (expected[0] - expected[1]).abs().max() > 1e-3
    for name in "abc":
        library.save_adapter(str(tmp_path / f"lib-{name}"), name, with_head=False, use_safetensors=True)
    ours = AutoAdapterModel.from_pretrained(str(GOLDEN / arch)).eval()
    for name in "abc":
        ours.load_adapter(str(tmp_path / f"lib-{name}"))
    ours.share_parameters(MultiTask("a", "b", "c"))  # the saved copies are equal: sharing changes no value
    ours.set_active_adapters(MultiTask("a", "b", "c"))
    with torch.no_grad():
        for ids, wanted in zip(routings, expected):
            torch.testing.assert_close(_first(ours(**inputs, task_ids=ids)), wanted, rtol=0, atol=1e-5)
    for name in "abc":
        ours.save_adapter(str(tmp_path / f"ours-{name}"), name)
    again = adapters.AutoAdapterModel.from_pretrained(str(GOLDEN / arch)).eval()
    for name in "abc":
        again.load_adapter(str(tmp_path / f"ours-{name}"), use_safetensors=True)
    again.set_active_adapters(adapters.MultiTask("a", "b", "c"))
    with torch.no_grad():
        for ids, wanted in zip(routings, expected):
            torch.testing.assert_close(_first(again(**inputs, task_ids=ids)), wanted, rtol=0, atol=1e-5)


def test_share_parameters_keys_and_trainable_parameters_match_the_library():
    adapters = _library()
    from adapters_client import AutoAdapterModel, MultiTask

    library = adapters.AutoAdapterModel.from_pretrained(str(GOLDEN / "bert"))
    ours = AutoAdapterModel.from_pretrained(str(GOLDEN / "bert"))
    for model, block in ((library, adapters.MultiTask("a", "b")), (ours, MultiTask("a", "b"))):
        for name in "ab":
            model.add_adapter(name, config=adapters.MTLLoRAConfig(n_up_projection=2).to_dict())
        model.share_parameters(block, reference_adapter_name="b")
        model.train_adapter(block)
    keys = [{k for k in m.state_dict() if ".loras." in k or "shared_parameters" in k} for m in (library, ours)]
    assert keys[0] == keys[1] and any(".shared_parameters.a,b.lora_B" in k for k in keys[0])
    trainable = [{n for n, p in m.named_parameters(remove_duplicate=False) if p.requires_grad} for m in (library, ours)]
    assert trainable[0] == trainable[1]


def test_a_share_named_like_its_adapter_loads_both_ways(tmp_path):
    """adapters 1.3.0 then saves the shared pair twice (loras.a and shared_parameters.a; only as a pickle, its
    safetensors refuses shared tensors): ours reads that file and writes the pair once, which the library reads."""
    adapters = _library()
    from adapters_client import AutoAdapterModel

    library = _library_tasks(adapters, "bert", adapters.MTLLoRAConfig(n_up_projection=2), names=("a", "b"),
                             share=False)
    library.share_parameters(["a", "b"], name="a")
    library.set_active_adapters("a")
    inputs = _mtl_inputs("bert")
    with torch.no_grad():
        expected = _first(library(**inputs))
    with pytest.raises(RuntimeError):
        library.save_adapter(str(tmp_path / "safe"), "a", with_head=False, use_safetensors=True)
    library.save_adapter(str(tmp_path / "lib"), "a", with_head=False)
    saved = torch.load(str(tmp_path / "lib" / "pytorch_adapter.bin"), weights_only=True)
    assert any(".shared_parameters.a.lora_A" in k for k in saved)
    ours = AutoAdapterModel.from_pretrained(str(GOLDEN / "bert")).eval()
    ours.load_adapter(str(tmp_path / "lib"), allow_pickle=True, set_active=True)
    with torch.no_grad():
        torch.testing.assert_close(_first(ours(**inputs)), expected, rtol=0, atol=1e-6)
    ours.add_adapter("b", config="mtl_lora[n_up_projection=2]")
    ours.share_parameters(["a", "b"], name="a")
    ours.save_adapter(str(tmp_path / "ours"), "a")
    again = adapters.AutoAdapterModel.from_pretrained(str(GOLDEN / "bert")).eval()
    again.load_adapter(str(tmp_path / "ours"), set_active=True, use_safetensors=True)
    with torch.no_grad():
        torch.testing.assert_close(_first(again(**inputs)), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("task_ids, library_error", [
    (None, AssertionError),  # the library asserts; ours: InvalidComposition naming task_ids
    (torch.tensor([0, 2]), IndexError),  # an id with no child
    (["a", "z"], ValueError),  # a name with no child
])
def test_bad_task_ids_are_refused_where_the_library_fails(task_ids, library_error):
    adapters = _library()
    from adapters_client import AutoAdapterModel, MultiTask
    from adapters_client.errors import InvalidComposition

    inputs = {"input_ids": torch.tensor([[5, 6, 7], [8, 9, 10]])}
    kwargs = {} if task_ids is None else {"task_ids": task_ids}
    library = _library_tasks(adapters, "bert", adapters.MTLLoRAConfig(), names=("a", "b"))
    with pytest.raises(library_error):
        library(**inputs, **kwargs)
    ours = AutoAdapterModel.from_pretrained(str(GOLDEN / "bert")).eval()
    for name in "ab":
        ours.add_adapter(name, config="mtl_lora")
    ours.set_active_adapters(MultiTask("a", "b"))
    with pytest.raises(InvalidComposition) as info:
        ours(**inputs, **kwargs)
    assert info.value.details["field"] == "task_ids"


def test_too_few_task_ids_run_silently_in_the_library_and_are_refused_by_ours():
    adapters = _library()
    from adapters_client import AutoAdapterModel, MultiTask
    from adapters_client.errors import InvalidComposition

    inputs = {"input_ids": torch.tensor([[5, 6, 7], [8, 9, 10]])}
    library = _library_tasks(adapters, "bert", adapters.MTLLoRAConfig(), names=("a", "b"))
    with torch.no_grad():
        short, right = (_first(library(**inputs, task_ids=torch.tensor(ids))) for ids in ([0], [0, 0]))
    assert (short - right).abs().max() > 1e-3  # row 1 silently gets no (or another) adapter
    ours = AutoAdapterModel.from_pretrained(str(GOLDEN / "bert")).eval()
    for name in "ab":
        ours.add_adapter(name, config="mtl_lora")
    ours.set_active_adapters(MultiTask("a", "b"))
    with pytest.raises(InvalidComposition, match="batch has 2 rows"):
        ours(**inputs, task_ids=torch.tensor([0]))


@pytest.mark.parametrize("case", ["gpt2", "qwen2", "dora", "merge", "deberta-v2"])
def test_mtl_lora_refusals_match_library_failures(case):
    adapters = _library()
    import transformers

    from adapters_client import AutoAdapterModel, MultiTask, init
    from adapters_client.errors import InvalidAdapterConfig, InvalidComposition
    from tests.client.golden.make_golden import backbone_model_or_path

    inputs = {"input_ids": torch.tensor([[5, 6, 7], [8, 9, 10]])}
    if case == "qwen2":  # the plugin interface: add_adapter refuses the config
        library = transformers.AutoModel.from_pretrained(backbone_model_or_path("qwen2"))
        adapters.init(library)
        with pytest.raises(ValueError, match="not supported"):
            library.add_adapter("a", config="mtl_lora")
        ours = init(transformers.AutoModel.from_pretrained(backbone_model_or_path("qwen2")))
        with pytest.raises(InvalidAdapterConfig) as info:
            ours.add_adapter("a", config="mtl_lora")
        assert info.value.field == "architecture"
        return
    arch = "deberta-v2" if case == "deberta-v2" else "gpt2" if case == "gpt2" else "bert"
    config = adapters.MTLLoRAConfig(use_dora=case == "dora")
    library = adapters.AutoAdapterModel.from_pretrained(str(GOLDEN / arch)).eval()
    ours = AutoAdapterModel.from_pretrained(str(GOLDEN / arch)).eval()
    if case == "dora":
        with pytest.raises(KeyError):
            library.add_adapter("a", config=config)
        with pytest.raises(InvalidAdapterConfig) as info:
            ours.add_adapter("a", config=config.to_dict())
        assert info.value.field == "use_dora"
        return
    if case == "gpt2":  # built by the library, which then fails in the forward pass
        library.add_adapter("a", config=config, set_active=True)
        with pytest.raises(RuntimeError):
            library(**inputs)
        with pytest.raises(InvalidAdapterConfig) as info:
            ours.add_adapter("a", config=config.to_dict())
        assert info.value.field == "selfattn_lora"
        return
    for model in (library, ours):
        for name in "ab":
            model.add_adapter(name, config=config.to_dict() if model is ours else config)
    if case == "merge":
        with pytest.raises(RuntimeError):
            library.merge_adapter("a")
            library.set_active_adapters("a")
            library(**inputs)
        with pytest.raises(InvalidAdapterConfig) as info:
            ours.merge_adapter("a")
        assert info.value.field == "architecture"
        return
    library.set_active_adapters(adapters.MultiTask("a", "b"))  # DeBERTa-v2: the relative positions' projection
    with pytest.raises(IndexError):
        library(**inputs, task_ids=torch.tensor([0, 1]))
    ours.set_active_adapters(MultiTask("a", "b"))
    with pytest.raises(InvalidComposition):
        ours(**inputs, task_ids=torch.tensor([0, 1]))
