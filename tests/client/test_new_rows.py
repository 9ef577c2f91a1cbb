"""Mistral, Qwen2 and ModernBERT rows: what the golden cases (``*/mistral-*``, ``*/qwen2-*``, ``*/modernbert-*``)
do not show by themselves.

- Mistral: the library's native ``MistralAdapterModel`` is the reference (golden cases, Llama's layout).
- Qwen2, ModernBERT: adapters 1.3.0 reaches them only through its pre-supported plugin interface
  (``adapters.init``); the golden cases were written that way (case.json ``library_class``). Prefix and prompt
  tuning are not in that interface, so the rows refuse them.
Here: the typed row facts, the refusals, weight names equal to the library's, sliding windows (batch = each row
alone, shorter and longer than the window, cached decoding), ModernBERT's adapter-side ``mlp_norm`` (the golden
case fails without it), its bias-free fused ``Wqkv`` (left as it is) and its unpadded flash-attention path
(refused on transformers 4.x), Parallel on the interface rows (= each adapter alone), hooks that fail loudly.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from adapters_client.architectures import ARCHITECTURES, get_spec
from adapters_client.errors import InvalidAdapterConfig

from .engine_helpers import hidden, randomise, tiny_config, tiny_model
from .golden import CASES_DIR, build_ours, case_dirs, compare, read_case, run_ours

NEW = ("mistral", "qwen2", "modernbert")
INTERFACE = ("qwen2", "modernbert")


def _model(arch: str, attn: str = "eager", **overrides):
    from adapters_client import AutoAdapterModel

    config = tiny_config(arch)
    for key, value in overrides.items():
        setattr(config, key, value)
    torch.manual_seed(0)
    return AutoAdapterModel.from_config(config, attn_implementation=attn).eval()


def _ids(batch: int, length: int, seed: int = 2) -> torch.Tensor:
    return torch.randint(3, 99, (batch, length), generator=torch.Generator().manual_seed(seed))


# --- the rows -------------------------------------------------------------------------------------------------
def test_mistral_row_is_llamas_layout():
    llama, mistral = get_spec("llama"), get_spec("mistral")
    assert mistral.model_class == "MistralAdapterModel" and not mistral.library_interface
    assert dataclasses.replace(mistral, model_type="llama", model_class="LlamaAdapterModel") == llama


def test_qwen2_row():
    spec = get_spec("qwen2")
    assert spec.library_interface and spec.model_class == "Qwen2Model" and spec.base_prefix == "model"
    # the plugin interface's LoRA locations (Llama's native row has them the other way round)
    assert (spec.lora_intermediate, spec.lora_output) == ("mlp.up_proj", "mlp.down_proj")
    assert spec.prefix_route is None and spec.prompt_embeddings is None
    assert spec.causal and spec.last_token_heads and spec.embedding_output == "embed_tokens"


def test_modernbert_row():
    spec = get_spec("modernbert")
    assert spec.library_interface and spec.model_class == "ModernBertModel" and spec.merged_qkv == "attn.Wqkv"
    assert (spec.lora_intermediate, spec.lora_output) == ("mlp.Wi", "mlp.Wo")
    attention, output = spec.sites
    assert (attention.hidden, attention.residual.module, attention.pre_norm) == ("attn.Wo", "attn", "mlp_norm")
    assert (output.hidden, output.residual.module, output.pre_norm) == ("mlp", "mlp", None)
    assert not spec.causal and spec.prefix_route is None and spec.prompt_embeddings is None


def test_new_fields_keep_the_other_rows_unchanged():
    for model_type, spec in ARCHITECTURES.items():
        if model_type not in INTERFACE:
            assert not spec.library_interface, model_type
        if model_type != "modernbert":
            assert all(site.pre_norm is None for site in spec.sites + tuple(getattr(spec, "decoder_sites", ())))


# --- refusals (typed) -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", INTERFACE)
@pytest.mark.parametrize("config", ["prefix_tuning[prefix_length=3,bottleneck_size=8]",
                                    "prompt_tuning[prompt_length=2]", "seq_bn[original_ln_after=False]",
                                    "double_seq_bn[original_ln_after=False]"])
def test_interface_rows_refuse_what_the_plugin_interface_refuses(arch, config):
    model = tiny_model(arch)
    with pytest.raises(InvalidAdapterConfig):
        model.add_adapter("x", config=config)
    assert not model.has_adapter("x")


def test_original_ln_after_false_still_runs_on_native_rows():
    model = tiny_model("mistral")
    model.add_adapter("x", config="seq_bn[original_ln_after=False]")
    assert model.has_adapter("x")


@pytest.mark.parametrize("arch, config", [("mistral", "vera"), ("mistral", "dvora"), ("qwen2", "vera"),
                                          ("qwen2", "dvora"), ("modernbert", "dora"), ("modernbert", "vera"),
                                          ("modernbert", "dvora")])
def test_combinations_the_library_fails_on_are_refused(arch, config):
    """Grouped-query k/v narrower than q (VeRA's shared A/B); ModernBERT's fused Wqkv (DoRA, VeRA): the library
    fails on each (make_golden.SKIPPED checks that), we refuse when the adapter is added."""
    model = tiny_model(arch)
    with pytest.raises(InvalidAdapterConfig):
        model.add_adapter("x", config=config)
    assert not model.has_adapter("x")


# --- weight names: ours = the library's -------------------------------------------------------------------------
def _adapter_keys(folder) -> set:
    from safetensors.torch import load_file

    return set(load_file(str(folder / "adapter.safetensors")))


def _strip(keys: set, prefix: str = "model.") -> set:
    return {k[len(prefix):] if k.startswith(prefix) else k for k in keys}


NAMED_CASES = [folder for folder in case_dirs() if folder.name == "eager"
               and read_case(folder)[0]["arch"] in NEW and read_case(folder)[0]["family"] == "methods"]


_BN = ("seq_bn", "double_seq_bn", "par_bn", "scaled_par_bn", "seq_bn_mh", "seq_bn_inv", "double_seq_bn_inv",
       "compacter", "compacter++")
REQUIRED = {  # independent of the generator: the suite cannot shrink silently
    "mistral": {"methods": _BN + ("lora", "ia3", "dora", "prefix_tuning"),
                "heads": ("classification", "multilabel", "tagging", "question_answering", "causal_lm"),
                "compositions": ("stack", "fuse", "parallel", "batchsplit", "average", "average-adapter",
                                 "adapterdrop")},
    "qwen2": {"methods": _BN + ("lora", "ia3", "dora"), "heads": ("classification", "tagging", "causal_lm"),
              "compositions": ("stack", "fuse", "batchsplit", "average", "average-adapter", "adapterdrop")},
    "modernbert": {"methods": _BN + ("lora", "ia3"),
                   "heads": ("classification", "tagging", "question_answering", "masked_lm"),
                   "compositions": ("stack", "fuse", "batchsplit", "average", "average-adapter", "adapterdrop")},
}


def test_every_required_case_exists():
    present = {folder.relative_to(CASES_DIR).as_posix() for folder in case_dirs()}
    required = {f"plain/{arch}/{attn}" for arch in NEW for attn in ("eager", "sdpa")}
    required |= {f"{family}/{arch}-{name}/{attn}" for arch, families in REQUIRED.items()
                 for family, names in families.items() for name in names for attn in ("eager", "sdpa")}
    assert not sorted(required - present)
    # the interface rows' cases say how the library ran (its plugin interface through adapters.init)
    for folder in case_dirs():
        meta = read_case(folder)[0]
        if meta["arch"] in INTERFACE:
            assert meta["library_class"] and "adapters.init" in meta["expected_from"], folder


@pytest.mark.parametrize("folder", NAMED_CASES, ids=lambda f: f.parent.name)
def test_our_saved_weight_names_are_the_librarys(folder, tmp_path):
    """The library's file of the case (written from its own model) and ours hold the same weight names (the
    library writes no base-model prefix from an ``adapters.init`` base model: compared without it)."""
    meta, _, _ = read_case(folder)
    model = build_ours(folder, meta)
    model.save_adapter(str(tmp_path / "x"), "x", with_head=False)
    theirs = _adapter_keys(folder / meta["adapters"]["x"])
    ours = _adapter_keys(tmp_path / "x")
    theirs = {k for k in theirs if not k.startswith("heads.")}
    assert _strip(ours) == _strip(theirs)


# --- sliding windows ---------------------------------------------------------------------------------------------
CONFIGS = {"seq_bn": "seq_bn", "lora": "lora[intermediate_lora=True,output_lora=True]",
           "prefix": "prefix_tuning[prefix_length=3,bottleneck_size=8]"}
WINDOW_CASES = [(a, m, attn) for a in NEW for m in CONFIGS for attn in ("eager", "sdpa")
                if not (m == "prefix" and a in INTERFACE)]


def _window(arch: str) -> int:
    config = tiny_config(arch)
    return config.local_attention // 2 if arch == "modernbert" else config.sliding_window


@pytest.mark.parametrize("arch, method, attn", WINDOW_CASES)
def test_padded_batch_equals_each_row_alone_around_the_window(arch, method, attn):
    """Rows shorter and longer than the sliding window in one right-padded batch: each attended position equals
    that row run alone (the window and the adapters see only the row's own tokens)."""
    model = _model(arch, attn)
    model.add_adapter("x", config=CONFIGS[method])
    randomise(model.adapter_engine.modules_of("x"), std=0.3)
    model.set_active_adapters("x")
    window = _window(arch)
    lengths = [window - 1, 2 * window + 2, window + 1]  # shorter, longer, just longer than the window
    ids = _ids(len(lengths), max(lengths))
    mask = torch.zeros_like(ids)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
    batch = hidden(model, {"input_ids": ids, "attention_mask": mask})
    for row, length in enumerate(lengths):
        alone = hidden(model, {"input_ids": ids[row:row + 1, :length]})
        torch.testing.assert_close(batch[row:row + 1, :length], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", NEW)
def test_the_window_changes_long_rows_only(arch):
    """The tests above run with a real window: a long row's output depends on it, a row within it does not."""
    window = _window(arch)
    wide = {"sliding_window": 64} if arch != "modernbert" else {"local_attention": 128}
    narrow_model, wide_model = _model(arch), _model(arch, **wide)
    for model in (narrow_model, wide_model):
        model.add_adapter("x", config="seq_bn")
        randomise(model.adapter_engine.modules_of("x"), std=0.3)
        model.set_active_adapters("x")
    short, long = _ids(1, window - 1), _ids(1, 3 * window)
    torch.testing.assert_close(hidden(narrow_model, {"input_ids": short}), hidden(wide_model, {"input_ids": short}))
    assert (hidden(narrow_model, {"input_ids": long}) - hidden(wide_model, {"input_ids": long})).abs().max() > 1e-3


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_mistral_prefix_with_a_filled_cache_equals_the_full_forward(attn):
    """Cached decoding past the sliding window: the prefix goes in front of past + current keys (never into the
    cache), every prefix column stays visible, step-by-step outputs equal the full forward's."""
    model = _model("mistral", attn)
    model.add_adapter("p", config=CONFIGS["prefix"])
    randomise(model.adapter_engine.modules_of("p"), std=0.5)
    model.set_active_adapters("p")
    ids = _ids(2, 3 * _window("mistral"))
    steps = ids.shape[1] - 5
    with torch.no_grad():
        full = model(input_ids=ids, use_cache=False).last_hidden_state
        out = model(input_ids=ids[:, :5], use_cache=True)
        torch.testing.assert_close(out.last_hidden_state, full[:, :5], atol=1e-5, rtol=0)
        cache = out.past_key_values
        for step in range(steps):
            out = model(input_ids=ids[:, 5 + step:6 + step], past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            torch.testing.assert_close(out.last_hidden_state[:, 0], full[:, 5 + step], atol=1e-5, rtol=0)
        model.set_active_adapters(None)
        plain = model(input_ids=ids, use_cache=False).last_hidden_state
    assert (plain - full).abs().max() > 1e-3


# --- ModernBERT: the adapter's own mlp_norm; the fused Wqkv without bias ------------------------------------------
def test_modernbert_attention_adapter_needs_its_pre_norm():
    """The library's attention adapter normalises (Wo output + attention input) with the layer's mlp_norm before
    it runs (its interface's ``layer_ln_1``); the golden case passes with it and fails without it."""
    folder = CASES_DIR / "methods" / "modernbert-seq_bn_mh" / "eager"
    meta, inputs, expected = read_case(folder)
    model = build_ours(folder, meta)
    compare(run_ours(model, inputs), expected, meta["compare"], meta["atol"])
    sites = [site for site in model.adapter_engine.bottleneck_layers if site.site.pre_norm]
    assert len(sites) == model.config.num_hidden_layers
    for site in sites:
        site._pre_norm = None
    with pytest.raises(AssertionError):
        compare(run_ours(model, inputs), expected, meta["compare"], meta["atol"])


def test_modernbert_bias_free_wqkv_stays_bias_free():
    """adapters 1.3.0 replaces a bias-free Wqkv by a Linear with a fresh random bias when it wraps the model (so
    its golden backbone has attention biases); we hook the module as it is: no new parameter, same outputs."""
    from transformers import AutoModel

    from adapters_client import init

    config = tiny_config("modernbert")
    assert not config.attention_bias
    torch.manual_seed(0)
    plain = AutoModel.from_config(config).eval()
    names = {name for name, _ in plain.named_parameters()}
    ids = {"input_ids": _ids(2, 9)}
    before = hidden(plain, ids)
    model = init(plain)
    assert {name for name, _ in model.named_parameters()} == names
    assert model.layers[0].attn.Wqkv.bias is None
    torch.testing.assert_close(hidden(model, ids), before, atol=0, rtol=0)
    model.add_adapter("l", config="lora[alpha=16]")
    randomise(model.adapter_engine.modules_of("l"), std=0.3)
    model.set_active_adapters("l")
    assert (hidden(model, ids) - before).abs().max() > 1e-3


# --- Parallel: the library refuses it on qwen2 / modernbert (not in its list); ours equals each adapter alone ------
@pytest.mark.parametrize("arch", INTERFACE)
def test_parallel_on_interface_rows_equals_each_adapter_alone(arch):
    from adapters_client.composition import Parallel

    from .engine_helpers import tiny_inputs

    model = tiny_model(arch)
    for name, config in (("a", "seq_bn[mh_adapter=True,reduction_factor=4]"),
                         ("b", "seq_bn[mh_adapter=True,reduction_factor=8]")):  # one pre_forward for both
        model.add_adapter(name, config=config)
        randomise(model.adapter_engine.modules_of(name), seed=ord(name), std=0.3)
    inputs = tiny_inputs(batch=2, length=9)
    alone = {}
    for name in "ab":
        model.set_active_adapters(name)
        alone[name] = hidden(model, inputs)
    assert (alone["a"] - alone["b"]).abs().max() > 1e-3
    model.set_active_adapters(Parallel("a", "b"))
    both = hidden(model, inputs)
    torch.testing.assert_close(both[:2], alone["a"], atol=1e-5, rtol=0)
    torch.testing.assert_close(both[2:], alone["b"], atol=1e-5, rtol=0)


# --- ModernBERT's unpadded path (flash attention on transformers 4.x) is refused ----------------------------------
def test_modernbert_unpadded_flash_attention_is_refused_on_transformers_4():
    """transformers 4.x unpads ModernBERT's batch to (tokens, hidden) under flash_attention_2; with adapters active
    that path is refused (typed) before the model runs. transformers 5 never unpads: nothing to refuse there."""
    import transformers

    from adapters_client.errors import IncompatibleAdapter

    model = tiny_model("modernbert")
    model.add_adapter("x", config="seq_bn")
    model.set_active_adapters("x")
    inputs = {"input_ids": _ids(2, 6)}
    hidden(model, inputs)  # eager: runs
    model.config._attn_implementation_internal = "flash_attention_2"  # no flash-attn kernel needed: refused first
    assert model.config._attn_implementation == "flash_attention_2"
    if int(transformers.__version__.split(".")[0]) >= 5:
        model.adapter_engine._refuse_unpadded()  # no error
        return
    with pytest.raises(IncompatibleAdapter, match="unpadded"):
        hidden(model, inputs)
    model.set_active_adapters(None)
    model.config._attn_implementation_internal = "eager"
    hidden(model, inputs)


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_files_under_the_wrapping_class_prefix(arch, tmp_path):
    """Qwen2ForQuestionAnswering and LlamaForQuestionAnswering keep their base model under ``transformer``, not the
    row's ``model``: files saved from them carry that prefix (as the adapters library's do), files from the row's
    AdapterModel (``model.``) load into them and theirs into it, and a file under any other prefix is refused
    (typed, naming the key), never half loaded."""
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForQuestionAnswering

    from adapters_client import init
    from adapters_client.errors import IncompatibleAdapter
    from adapters_client.model import AdapterModel

    def qa_model():
        torch.manual_seed(0)
        return init(AutoModelForQuestionAnswering.from_config(tiny_config(arch)).eval())

    model = qa_model()
    assert model.base_model_prefix == "transformer"
    assert model.adapter_engine.weights_prefix == "transformer"
    model.add_adapter("x", config="seq_bn")
    randomise(model.adapter_engine.modules_of("x"), std=0.3)  # not the identity: a lost weight would show
    model.set_active_adapters("x")
    inputs = {"input_ids": _ids(2, 6)}
    with torch.no_grad():
        expected = model(**inputs).start_logits
        assert not torch.equal(expected, qa_model()(**inputs).start_logits)  # the adapter changes the output
    model.save_adapter(str(tmp_path / "x"), "x", with_head=False)
    weights = tmp_path / "x" / "adapter.safetensors"
    state = load_file(str(weights))
    assert state and all(key.startswith("transformer.") for key in state)

    again = qa_model()
    assert again.load_adapter(str(tmp_path / "x"), with_head=False, set_active=True) == "x"
    torch.testing.assert_close(again(**inputs).start_logits, expected, rtol=0, atol=0)

    # the row's AdapterModel writes (and reads) ``model.`` keys, which the QA class reads too
    import shutil

    shutil.copytree(tmp_path / "x", tmp_path / "renamed")
    save_file({"model." + key[len("transformer."):]: value for key, value in state.items()},
              str(tmp_path / "renamed" / "adapter.safetensors"))
    torch.manual_seed(0)
    flex = AdapterModel(AutoModelForQuestionAnswering.from_config(tiny_config(arch)).transformer.eval())
    assert flex.load_adapter(str(tmp_path / "renamed"), with_head=False) == "x"
    flex.save_adapter(str(tmp_path / "flex"), "x", with_head=False)
    assert all(key.startswith("model.") for key in load_file(str(tmp_path / "flex" / "adapter.safetensors")))
    third = qa_model()
    third.load_adapter(str(tmp_path / "flex"), with_head=False, set_active=True)
    torch.testing.assert_close(third(**inputs).start_logits, expected, rtol=0, atol=0)

    save_file({"encoder." + key[len("transformer."):]: value for key, value in state.items()}, str(weights))
    fresh = qa_model()
    with pytest.raises(IncompatibleAdapter, match="encoder"):
        fresh.load_adapter(str(tmp_path / "x"), with_head=False)
    assert not fresh.has_adapter("x")


# --- hooks fail loudly on the new rows ---------------------------------------------------------------------------
def _base(arch: str):
    from transformers import AutoModel

    torch.manual_seed(0)
    return AutoModel.from_config(tiny_config(arch))


@pytest.mark.parametrize("arch, drop, replace_with", [
    ("modernbert", "mlp_norm", torch.nn.Identity()),  # the attention adapter's pre_norm must be a LayerNorm
    ("modernbert", "attn", None),
    ("qwen2", "input_layernorm", None),  # the attention site's residual source
    ("mistral", "post_attention_layernorm", None),
])
def test_missing_hook_targets_are_typed_errors(arch, drop, replace_with):
    from adapters_client.errors import HookTargetMissing
    from adapters_client.model import AdapterModel

    base = _base(arch)
    if replace_with is None:
        delattr(base.layers[1], drop)
    else:
        setattr(base.layers[1], drop, replace_with)
    with pytest.raises(HookTargetMissing) as info:
        AdapterModel(base)
    assert drop in str(info.value) and arch in str(info.value)


@pytest.mark.parametrize("arch, config, module", [
    ("modernbert", "seq_bn[mh_adapter=True]", "attn.Wo"),
    ("modernbert", "lora", "attn.Wqkv"),
    ("qwen2", "lora[intermediate_lora=True]", "mlp.up_proj"),
])
def test_a_hooked_module_bypassed_is_caught_at_the_first_forward(arch, config, module):
    from adapters_client.errors import HookNotRun

    model = tiny_model(arch)
    model.add_adapter("x", config=config)
    model.set_active_adapters("x")
    parent_path, name = module.rsplit(".", 1)
    parent = model.base_model.layers[0].get_submodule(parent_path)
    old = getattr(parent, name)
    fresh = torch.nn.Linear(old.in_features, old.out_features, bias=old.bias is not None)
    fresh.load_state_dict({k: v for k, v in old.state_dict().items() if "loras" not in k})
    setattr(parent, name, fresh)  # a "new release" that calls another module
    with pytest.raises(HookNotRun) as info:
        hidden(model, {"input_ids": _ids(2, 6)})
    assert f"layers.0.{module}" in str(info.value)
