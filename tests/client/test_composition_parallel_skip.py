"""Parallel with AdapterDrop: the batch is replicated where the setup first runs, not at the model's input.

On post-LN models (BERT family, DistilBERT) that is the first bottleneck site the setup concerns (like the
adapters library); on GPT-2, or when LoRA runs in that layer, the start of that layer. Reference: the same
model with replication forced at the input (the engine's private switch), and separate single-adapter passes
with the same ``skip_layers``.
"""

from __future__ import annotations

import pytest
import torch

from adapters_client import Parallel, Stack

from .engine_helpers import randomise, tiny_config, tiny_inputs

ARCHS = ("bert", "distilbert", "gpt2")
NAMES = ("a", "b", "c")
SKIP = [0, 1]


def _model(arch: str, layers: int = 4, config: str = "seq_bn[reduction_factor=4]"):
    from adapters_client import AutoAdapterModel

    hf_config = tiny_config(arch)
    for key in ("num_hidden_layers", "n_layers", "n_layer"):
        if hasattr(hf_config, key):
            setattr(hf_config, key, layers)
    torch.manual_seed(0)
    model = AutoAdapterModel.from_config(hf_config).eval()
    for i, name in enumerate(NAMES):
        model.add_adapter(name, config=config)
        randomise(model.adapter_engine.modules_of(name), seed=10 + i, std=0.2)
    return model


def _inputs():
    inputs = tiny_inputs(batch=3, length=9)
    inputs["attention_mask"][1, -4:] = 0  # two rows with padding of different lengths
    return inputs


def _run(model, **kwargs):
    with torch.no_grad():
        out = model(**_inputs(), **kwargs)
    return out[0]


def _batch_sizes(model, layer_indices):
    """Hooks on the given layers record the batch size of their hidden_states input (``seen``) and output."""
    from adapters_client.architectures import get_path

    seen, produced, handles = {}, {}, []
    layers = get_path(model.base_model, model.adapter_engine.spec.layers)
    for idx in layer_indices:
        def before(module, args, kwargs, idx=idx):
            hidden = args[0] if args else kwargs["hidden_states"]
            seen[idx] = hidden.shape[0]

        def after(module, args, output, idx=idx):
            produced[idx] = (output[0] if isinstance(output, tuple) else output).shape[0]
        handles.append(layers[idx].register_forward_pre_hook(before, with_kwargs=True))
        handles.append(layers[idx].register_forward_hook(after))
    seen["out"] = produced
    return seen, handles


@pytest.mark.parametrize("arch", ARCHS)
def test_layer_replication_matches_input_replication(arch):
    model = _model(arch)
    model.set_active_adapters(Parallel(*NAMES), skip_layers=SKIP)
    extra = {"use_cache": False} if arch == "gpt2" else {}
    ours = _run(model, **extra)
    model.adapter_engine._replicate_at_layers = False
    reference = _run(model, **extra)
    assert ours.shape == reference.shape == (9, 9, 32)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_parallel_skip_equals_separate_passes(arch):
    model = _model(arch)
    extra = {"use_cache": False} if arch == "gpt2" else {}
    model.set_active_adapters(Parallel(*NAMES), skip_layers=SKIP)
    together = _run(model, **extra)
    for i, name in enumerate(NAMES):
        model.set_active_adapters(name, skip_layers=SKIP)
        alone = _run(model, **extra)
        torch.testing.assert_close(together[i * 3:(i + 1) * 3], alone, rtol=0, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_skipped_layers_run_on_original_batch(arch):
    model = _model(arch)
    model.set_active_adapters(Parallel(*NAMES), skip_layers=SKIP)
    seen, handles = _batch_sizes(model, [0, 1, 2, 3])
    _run(model, **({"use_cache": False} if arch == "gpt2" else {}))
    for handle in handles:
        handle.remove()
    # post-LN models replicate at layer 2's output adapter (its attention and FFN still run on 3 rows)
    first = 9 if arch == "gpt2" else 3
    assert seen == {0: 3, 1: 3, 2: first, 3: 9, "out": {0: 3, 1: 3, 2: 9, 3: 9}}


OTHER_METHODS = [(arch, config) for arch in ARCHS
                 for config in ("double_seq_bn[reduction_factor=4]", "par_bn[reduction_factor=4]")]
OTHER_METHODS += [("bert", "lora[r=4,alpha=8]"), ("distilbert", "lora[r=4,alpha=8]")]  # GPT-2: fused c_attn


@pytest.mark.parametrize(("arch", "config"), OTHER_METHODS)
def test_other_methods_match_input_replication(arch, config):
    """Attention-site adapters, parallel adapters and LoRA (replicated at the layer start) stay identical."""
    model = _model(arch, config=config)
    model.set_active_adapters(Parallel(*NAMES), skip_layers=[0])
    extra = {"use_cache": False} if arch == "gpt2" else {}
    seen, handles = _batch_sizes(model, [1])
    ours = _run(model, **extra)
    for handle in handles:
        handle.remove()
    assert seen["out"] == {1: 9}
    assert seen[1] == (3 if config.startswith(("double", "par")) and arch != "gpt2" else 9)
    model.adapter_engine._replicate_at_layers = False
    torch.testing.assert_close(ours, _run(model, **extra), rtol=0, atol=1e-5)


def test_replication_at_first_layer_with_an_adapter():
    """leave_out counts too: a layer without any of the setup's adapters runs on the original batch."""
    model = _model("bert", config="seq_bn[reduction_factor=4,leave_out=[0,1,2]]")
    model.set_active_adapters(Parallel(*NAMES))
    seen, handles = _batch_sizes(model, [0, 2, 3])
    out = _run(model)
    for handle in handles:
        handle.remove()
    assert seen == {0: 3, 2: 3, 3: 3, "out": {0: 3, 2: 3, 3: 9}}
    model.adapter_engine._replicate_at_layers = False
    torch.testing.assert_close(out, _run(model), rtol=0, atol=1e-5)


def test_stack_before_parallel_replicates_where_the_stack_starts():
    model = _model("bert")
    model.add_adapter("s", config="seq_bn[reduction_factor=4]")
    randomise(model.adapter_engine.modules_of("s"), seed=3, std=0.2)
    model.set_active_adapters(Stack("s", Parallel("a", "b")), skip_layers=[0])
    seen, handles = _batch_sizes(model, [0, 1])
    ours = _run(model)
    for handle in handles:
        handle.remove()
    assert seen == {0: 3, 1: 3, "out": {0: 3, 1: 6}}
    model.adapter_engine._replicate_at_layers = False
    torch.testing.assert_close(ours, _run(model), rtol=0, atol=1e-5)


def test_every_layer_skipped_still_gives_one_output_per_branch():
    model = _model("bert")
    model.set_active_adapters(Parallel(*NAMES), skip_layers=[0, 1, 2, 3])
    out = _run(model)
    model.set_active_adapters(None)
    plain = _run(model)
    assert out.shape[0] == 9
    for i in range(3):
        torch.testing.assert_close(out[i * 3:(i + 1) * 3], plain, rtol=0, atol=1e-6)


def test_cache_and_recorded_outputs_fall_back_to_input_replication():
    """GPT-2 with its cache on and hidden-state recording replicate at the input: every layer sees B*channels."""
    model = _model("gpt2")
    model.set_active_adapters(Parallel(*NAMES), skip_layers=SKIP)
    seen, handles = _batch_sizes(model, [0, 2])
    cached = _run(model)  # GPT-2's config has use_cache=True
    assert seen == {0: 9, 2: 9, "out": {0: 9, 2: 9}}
    seen.clear()
    recorded = _run(model, use_cache=False, output_hidden_states=True)
    assert seen == {0: 9, 2: 9}
    for handle in handles:
        handle.remove()
    assert all(h.shape[0] == 9 for h in model(**_inputs(), use_cache=False, output_hidden_states=True)[-1])
    fast = _run(model, use_cache=False)
    torch.testing.assert_close(cached, fast, rtol=0, atol=1e-5)
    torch.testing.assert_close(recorded, fast, rtol=0, atol=1e-5)


def test_heads_get_one_chunk_per_branch():
    model = _model("bert")
    for i, name in enumerate(NAMES):
        model.add_classification_head(name, num_labels=2 + i)
    model.set_active_adapters(Parallel(*NAMES), skip_layers=SKIP)
    labels = torch.tensor([0, 1, 1])
    with torch.no_grad():
        ours = model(**_inputs(), labels=labels)
        model.adapter_engine._replicate_at_layers = False
        reference = model(**_inputs(), labels=labels)
    assert len(ours) == len(reference) == 3
    for mine, ref, classes in zip(ours, reference, (2, 3, 4)):
        assert mine.logits.shape == (3, classes)
        torch.testing.assert_close(mine.logits, ref.logits, rtol=0, atol=1e-5)
        torch.testing.assert_close(mine.loss, ref.loss, rtol=0, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_single_row_batch(arch):
    """With one row, tensors broadcast over the batch (masks, position ids) have the batch's size too."""
    model = _model(arch)
    model.set_active_adapters(Parallel(*NAMES), skip_layers=SKIP)
    inputs = tiny_inputs(batch=1, length=6)
    inputs["attention_mask"][0, -2:] = 0
    extra = {"use_cache": False} if arch == "gpt2" else {}
    with torch.no_grad():
        ours = model(**inputs, **extra)[0]
        model.adapter_engine._replicate_at_layers = False
        reference = model(**inputs, **extra)[0]
    assert ours.shape == (3, 6, 32)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_gradients_match_input_replication(arch):
    model = _model(arch)
    model.set_active_adapters(Parallel(*NAMES), skip_layers=SKIP)
    extra = {"use_cache": False} if arch == "gpt2" else {}
    grads = []
    for at_layers in (True, False):
        model.adapter_engine._replicate_at_layers = at_layers
        model.zero_grad()
        out = model(**_inputs(), **extra)[0]
        (out * torch.linspace(-1, 1, out.shape[0])[:, None, None]).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert any(".adapters.c." in name for name in grads[0]) and grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grad, grads[1][name], rtol=1e-4, atol=1e-5, msg=name)
