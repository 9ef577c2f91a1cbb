"""Writes the golden parity cases under tests/client/golden/cases with the ``adapters`` library 1.3.0.

Run from the repository root (reference virtualenv only; deterministic, rewrites every case):

    .venv-ref/bin/python -m tests.client.golden.make_golden

What each case holds and why some expected outputs come from the library's eager path: docs/golden-parity.md.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import adapters
import torch
import transformers
from adapters import composition as lib
from safetensors.torch import save_file

from adapters_client.convert import PICKLED_TO_SAFE, pickle_to_safetensors

from . import (ATOL, BACKBONES_DIR, CASE_FILE, CASES_DIR, DATA_FILE, EXPECTED_PREFIX, INPUT_PREFIX, flatten_output,
               max_diff, rowwise)

ROOT = Path(__file__).resolve().parents[3]
ARCHS = ("bert", "roberta", "xlm-roberta", "distilbert", "gpt2", "electra", "deberta-v2", "llama", "mistral", "qwen2",
         "modernbert", "bart", "t5")
PAD_IDS = {"bert": 0, "roberta": 1, "xlm-roberta": 1, "distilbert": 0, "gpt2": 0, "electra": 0, "deberta-v2": 0,
           "llama": 0, "mistral": 0, "qwen2": 0, "modernbert": 0, "bart": 1, "t5": 0}
# encoder-decoder archs: inputs carry decoder_input_ids; every row ends its text with <eos> (EOS_IDS), which the
# library's sequence heads read (the decoder output at the last <eos> of input_ids)
EOS_IDS = {"bart": 2, "t5": 1}
DECODER_START_IDS = {"bart": 2, "t5": 0}
# (arch, method) -> why OUR library has no case for a method the library supports there (refused with a typed error)
NOT_IMPLEMENTED = {
    ("t5", "seq_bn_inv"): "invertible adapters on T5 are refused (no single embedding-output hook)",
    ("t5", "double_seq_bn_inv"): "invertible adapters on T5 are refused (no single embedding-output hook)",
}
# archs the library reaches only through its pre-supported plugin interface (no *AdapterModel): it runs a
# transformers class wrapped with ``adapters.init``; method cases use the base model (``last_hidden_state``), head
# cases the transformers class of INTERFACE_HEADS (its own head, weights in its backbone folder) which OUR side
# wraps with ``adapters_client.init`` (case.json: ``library_class``, ``init_class``)
INTERFACE_ARCHS = ("qwen2", "modernbert")
INTERFACE_HEADS = {
    # Qwen2ForQuestionAnswering keeps its base model under ``transformer``, not the row's ``model``: the files of
    # both sides carry ``transformer.`` there (docs/engine-status.md, "Mistral, Qwen2, ModernBERT")
    "qwen2": {"classification": "AutoModelForSequenceClassification", "tagging": "AutoModelForTokenClassification",
              "question_answering": "AutoModelForQuestionAnswering", "causal_lm": "AutoModelForCausalLM"},
    "modernbert": {"classification": "AutoModelForSequenceClassification", "tagging": "AutoModelForTokenClassification",
                   "question_answering": "AutoModelForQuestionAnswering", "masked_lm": "AutoModelForMaskedLM"},
}
# methods whose interface cases run the LM class: on an ``adapters.init`` base model (no base-model prefix) adapters
# 1.3.0 leaves the shared PHM parameters out of save_adapter (its filter wants ".shared_parameters.<name>.")
INTERFACE_LM_METHODS = {"compacter": "shared PHM parameters", "compacter++": "shared PHM parameters"}
INTERFACE_LM_HEAD = {"qwen2": "causal_lm", "modernbert": "masked_lm"}
SLIDING_WINDOW = ("mistral", "qwen2", "modernbert")
INTERFACE_SOURCE = " (adapters.init with its pre-supported plugin interface)"
VOCAB = 99
ATTENTION = ("eager", "sdpa")
# arch -> the attention implementations transformers 4.57 (the library's line) has for it, when not both;
# our sdpa path on newer transformers is checked against the eager cases (tests/client/test_arch_rows.py)
ATTENTION_OF = {"electra": ("eager",), "deberta-v2": ("eager",), "t5": ("eager",)}
STD = 0.3  # randomised adapter / head weights (most methods start as the identity)
# randomised fusion weights (query, key, value): with STD the fusion scores reach 40-100 and the softmax turns
# float32 rounding (which differs between CPUs' kernels) into output differences above 1e-5 even for the
# library's own order of operations; at this scale the scores stay within a few units, as with trained fusions
FUSION_STD = 0.05
METHODS = {
    "seq_bn": "seq_bn", "double_seq_bn": "double_seq_bn", "par_bn": "par_bn", "scaled_par_bn": "scaled_par_bn",
    "lora": "lora", "ia3": "ia3", "prefix_tuning": "prefix_tuning[prefix_length=5,bottleneck_size=24]",
    "prompt_tuning": "prompt_tuning[prompt_length=3]",
    "dora": "dora", "vera": "vera", "dvora": "dvora",
    # invertible adapters (NICE on the embedding output; its inverse in LM heads) and Compacter (PHM layers; the
    # bottleneck size 32/4 = 8 must be divisible by phm_dim=4, the library's default reduction 32 gives 1)
    "seq_bn_inv": "seq_bn_inv", "double_seq_bn_inv": "double_seq_bn_inv",
    "compacter": "compacter[reduction_factor=4]", "compacter++": "compacter++[reduction_factor=4]",
    # config unions (several methods under one adapter name) and gating (use_gating=True)
    "unipelt": "unipelt",
    "prefix_tuning-par_bn": "prefix_tuning[prefix_length=5,bottleneck_size=24]|par_bn[reduction_factor=4]",
    "seq_bn-par_bn": "seq_bn[mh_adapter=True,output_adapter=False,reduction_factor=4]|par_bn[reduction_factor=4]",
    "lora_gated": "lora[use_gating=True]", "ia3_gated": "ia3[use_gating=True]",
    "seq_bn_gated": "seq_bn[use_gating=True]",
    # a sequential adapter after the attention too (mh_adapter): its pre_forward uses the site's LN (ModernBERT:
    # the plugin interface's layer_ln_1 = mlp_norm), which none of the presets above reaches there
    "seq_bn_mh": "seq_bn[mh_adapter=True,reduction_factor=4]",
    "prefix_tuning_gated": "prefix_tuning[prefix_length=5,bottleneck_size=24,use_gating=True,shared_gating=False]",
    # ReFT; LoReFT with r = hidden size (32): its orthogonal map is then square (matrix exponential) and the random
    # stored tensors give a non-zero projection (the Householder map of r < hidden rounds random values to zero)
    "loreft": "loreft[r=32,suffix_positions=2]", "noreft": "noreft[suffix_positions=2]",
    "direft": "direft[tied_weights=True,suffix_positions=2,non_linearity='tanh']",
    # AdapterPlus (no name in the library: its config class; default stochastic_depth=0.1, the identity in eval
    # mode; reduction 4 so the tiny models get a bottleneck wider than 1)
    "adapter_plus": adapters.AdapterPlusConfig(reduction_factor=4),
    # MTL-LoRA: its case holds two task adapters (MTL_ADAPTERS) sharing A and the up-projections, a MultiTask setup
    # and per-row task_ids (an input of the case); two up-projections so that their mix matters
    "mtl_lora": "mtl_lora[n_up_projection=2]",
}
MTL_ADAPTERS = ("x", "y")
MTL_TASK_IDS = [1, 0, 1, 0]  # rows 0 and 2 -> y, 1 and 3 -> x: interleaved, so the rows are regrouped and put back
# arch -> why its MTL-LoRA case is one adapter without MultiTask (the library fails there; ours refuses, typed)
MTL_NO_MULTITASK = {"deberta-v2": "DeBERTa-v2's query/key projections also project the relative position embeddings "
                                  "(one row for the whole batch), which adapters 1.3.0's MultiTask indexes by the "
                                  "batch's task order (IndexError)"}
# method -> the archs its case is written for (default: every arch). Unions and gates: the eight archs of the
# method rows; with a prefix, those where the library's sdpa prefix path is right (GPT-2, DistilBERT and Llama are
# compared with the library in eager mode by tests/parity/test_unions_library.py instead)
_UNION_ARCHS = ("bert", "roberta", "xlm-roberta", "distilbert", "gpt2", "electra", "deberta-v2", "llama")
_SDPA_PREFIX_OK = ("bert", "roberta", "xlm-roberta", "electra", "deberta-v2")
METHOD_ARCHS = {"unipelt": _SDPA_PREFIX_OK, "prefix_tuning-par_bn": _SDPA_PREFIX_OK,
                # and the encoder-decoders (BART: the library's eager output under both, as for its prefix_tuning)
                "prefix_tuning_gated": _SDPA_PREFIX_OK + ("bart", "t5"), "seq_bn-par_bn": _UNION_ARCHS,
                "lora_gated": _UNION_ARCHS,
                "ia3_gated": _UNION_ARCHS, "seq_bn_gated": _UNION_ARCHS}
# ReFT: every arch but BART (refused there: the library places decoder interventions by the encoder's mask and
# fails when the decoder is shorter; tests/parity/test_reft_library.py checks it)
METHOD_ARCHS.update({method: tuple(a for a in ARCHS if a not in ("bart", "t5"))  # encoder-decoders: refused
                     for method in ("loreft", "noreft", "direft")})
METHOD_ARCHS["seq_bn_mh"] = ("mistral", "qwen2", "modernbert")
# method -> why the library's reload of its own saved folder computes something else than the model that saved it;
# the case expects what the library computes from the saved files (checked to differ, so a fixed library shows)
RELOAD_DIFFERS = {"direft": "adapters 1.3.0 writes no subtract_projection key (a class attribute, not a field) and "
                            "reads its DiReFT folder back with subtract_projection=True"}
# method -> head kind of its case (default: classification); LM heads apply the inverse of invertible adapters
METHOD_HEADS = {"seq_bn_inv": "causal_lm", "double_seq_bn_inv": "causal_lm",
                ("bart", "seq_bn_inv"): "seq2seq_lm", ("bart", "double_seq_bn_inv"): "seq2seq_lm"}
# head kind -> (library method, arguments, head type in the library's per-model ``head_types``)
HEADS = {
    "classification": ("add_classification_head", {"num_labels": 3}, "classification"),
    "classification2": ("add_classification_head", {"num_labels": 2}, "classification"),
    "multilabel": ("add_classification_head", {"num_labels": 4, "multilabel": True}, "multilabel_classification"),
    "tagging": ("add_tagging_head", {"num_labels": 5}, "tagging"),
    "multiple_choice": ("add_multiple_choice_head", {"num_choices": 2}, "multiple_choice"),
    "question_answering": ("add_qa_head", {}, "question_answering"),
    "causal_lm": ("add_causal_lm_head", {}, "causal_lm"),
    "seq2seq_lm": ("add_seq2seq_lm_head", {}, "seq2seq_lm"),
    "masked_lm": ("add_masked_lm_head", {}, "masked_lm"),
}
# (arch, method) -> why the library's sdpa output is wrong; the case stores its eager (or row-wise) output
WRONG_UNDER_SDPA = {
    ("gpt2", "prefix_tuning"): "adapters 1.3.0 builds GPT-2's sdpa boolean mask for the prefix columns with the "
                               "wrong polarity, so under sdpa the prefix has no effect; its eager path is right",
    ("distilbert", "prefix_tuning"): "adapters 1.3.0's DistilBERT sdpa path adds its keep value 1.0 to the prefix "
                                     "columns of the additive float mask (eager masks correctly)",
    ("llama", "prefix_tuning"): "adapters 1.3.0's Llama sdpa path inverts its boolean keep-mask for the prefix "
                                "columns (with padding the prefix is masked out: output = no prefix) and, with no "
                                "mask, lets sdpa's is_causal align the causal mask to the top left of the longer "
                                "key axis; its eager path is right (a row alone = that row in the batch)",
    ("bart", "prefix_tuning"): "adapters 1.3.0's BART sdpa path builds the decoder self-attention's prefix columns "
                               "wrong (transformers 4.57 gives sdpa a boolean keep-mask, or none, there, and the "
                               "library inverts the prefix columns as for a float mask); its eager path is right",
}
WRONG_UNDER_SDPA[("bart", "prefix_tuning_gated")] = WRONG_UNDER_SDPA[("bart", "prefix_tuning")]
WRONG_UNDER_SDPA[("mistral", "prefix_tuning")] = WRONG_UNDER_SDPA[("llama", "prefix_tuning")].replace("Llama",
                                                                                                   "Mistral")
PROMPT_SDPA = ("adapters 1.3.0's sdpa path lets the prompt tokens attend to padded positions (the prompt rows "
               "of its extended mask are not masked); its eager path masks them")
for _arch in ARCHS[:4]:
    WRONG_UNDER_SDPA[(_arch, "prompt_tuning")] = PROMPT_SDPA
# (arch, method) -> why the library's eager path cannot run; expected = its sdpa path row by row, unpadded
FAILS_UNDER_EAGER = {
    ("distilbert", "prompt_tuning"): "adapters 1.3.0 crashes (IndexError in prefix_attention_mask) on DistilBERT "
                                     "prompt tuning in eager mode: the eager mask it extends is 2-D",
}
# (arch, method) -> why the case's inputs have no padding (attention_mask all 1): the library is wrong on padded
# rows and has no other attention path; the generator checks that, our padded output is checked row by row
# in tests/client/test_arch_rows.py
UNPADDED_INPUTS = {
    ("deberta-v2", "prompt_tuning"): "adapters 1.3.0 extends DeBERTa-v2's (batch, 1, N, N) keep-mask with rows of "
                                     "ones for the prompt, so the prompt tokens attend to padded positions (eager "
                                     "is its only path); this case's inputs have no padding",
}
ROWWISE = ("library sdpa, each row alone and cut to its attended length (no padding, so the sdpa masking "
           "difference cannot arise)")


@dataclass
class Spec:
    """One golden case before it is written (both attention implementations share its adapter folders)."""

    family: str
    name: str
    arch: str
    adapters: dict  # adapter name -> config string
    heads: dict = field(default_factory=dict)  # adapter name -> head kind (saved with the adapter)
    setup: Callable = None  # () -> library block or adapter name
    fusion: tuple = ()
    skip_layers: Optional[list] = None
    average: Optional[dict] = None
    choices: bool = False
    method: Optional[str] = None
    hf_head: Optional[str] = None  # INTERFACE_ARCHS: head kind of the transformers class (None: the base model)
    share: tuple = ()  # adapters that share_parameters (MTL-LoRA) before their weights are randomised
    task_ids: Optional[list] = None  # per-row task ids, an input of the case (MultiTask)

    @property
    def folder(self) -> Path:
        return CASES_DIR / self.family / self.name


def stochastic_depth_without_torchvision() -> None:
    """adapters 1.3.0 imports torchvision's StochasticDepth for ``stochastic_depth > 0`` (AdapterPlus) and refuses
    the config without torchvision, which the reference virtualenv does not hold. Then the library gets a
    stand-in with torchvision's documented semantics (identity in eval mode or with p = 0; in training each row
    kept with probability 1 - p and divided by it). The golden cases run in eval mode, where it does nothing."""
    import importlib.util
    import sys
    import types

    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is not None:
        return

    class StochasticDepth(torch.nn.Module):
        def __init__(self, p: float, mode: str):
            super().__init__()
            assert mode == "row", mode
            self.p, self.mode = p, mode

        def forward(self, x):
            if not self.training or self.p == 0.0:
                return x
            keep = 1.0 - self.p
            noise = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
            noise = noise.bernoulli_(keep)
            return x * (noise / keep if keep > 0.0 else noise)

    package, ops, module = (types.ModuleType(n) for n in ("torchvision", "torchvision.ops",
                                                          "torchvision.ops.stochastic_depth"))
    module.StochasticDepth = StochasticDepth
    package.ops, ops.stochastic_depth = ops, module
    sys.modules.update({"torchvision": package, "torchvision.ops": ops, "torchvision.ops.stochastic_depth": module})
    from adapters.methods import modeling

    modeling.is_torchvision_available = lambda: True


def backbone_model(arch: str, hf_head: Optional[str] = None):
    """A tiny randomly initialised HF base model (fixed seed); ``hf_head``: the transformers class with that head
    (INTERFACE_HEADS)."""
    from transformers import AutoModel, BertConfig, DistilBertConfig, GPT2Config, RobertaConfig, XLMRobertaConfig

    torch.manual_seed(1234 + ARCHS.index(arch))
    common = dict(vocab_size=VOCAB, pad_token_id=PAD_IDS[arch])
    bert_like = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                     max_position_embeddings=64, **common)
    config = {
        "bert": lambda: BertConfig(**bert_like), "roberta": lambda: RobertaConfig(**bert_like),
        "xlm-roberta": lambda: XLMRobertaConfig(**bert_like),
        "distilbert": lambda: DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=37,
                                               max_position_embeddings=64, **common),
        "gpt2": lambda: GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=64, bos_token_id=2, eos_token_id=2,
                                   **common),
        "electra": lambda: transformers.ElectraConfig(embedding_size=16, **bert_like),  # embeddings_project
        # relative positions as in DeBERTa-v3: log buckets, c2p + p2c, shared keys, no absolute positions
        "deberta-v2": lambda: transformers.DebertaV2Config(
            relative_attention=True, position_buckets=8, max_relative_positions=16, pos_att_type=["p2c", "c2p"],
            position_biased_input=False, norm_rel_ebd="layer_norm", share_att_key=True, type_vocab_size=0,
            **bert_like),
        # grouped-query attention (4 query heads, 2 key/value heads), RoPE, RMSNorm, SiLU MLP
        "llama": lambda: transformers.LlamaConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=37,
            max_position_embeddings=64, bos_token_id=2, eos_token_id=2, **common),
        # Llama's layout; sliding window 4 (< the 8 input tokens) on every layer (Mistral), on layer 1 (Qwen2)
        "mistral": lambda: transformers.MistralConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=37,
            max_position_embeddings=64, sliding_window=4, bos_token_id=2, eos_token_id=2, **common),
        "qwen2": lambda: transformers.Qwen2Config(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=37,
            max_position_embeddings=64, use_sliding_window=True, sliding_window=4, max_window_layers=1,
            bos_token_id=2, eos_token_id=2, **common),
        # layer 0 global, layer 1 local attention (4 tokens each side); no torch.compile of the MLP. Biases on
        # Wqkv/Wo: adapters.init replaces a bias-free Wqkv by a Linear with a fresh random bias (adapters 1.3.0),
        # which would change the backbone on every load
        "modernbert": lambda: transformers.ModernBertConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, attention_bias=True,
            global_attn_every_n_layers=2, local_attention=8, max_position_embeddings=64, bos_token_id=1,
            eos_token_id=2, cls_token_id=1, sep_token_id=2, reference_compile=False, **common),
        # post-LN encoder-decoder, 2 + 2 layers, cross-attention in every decoder layer
        "bart": lambda: transformers.BartConfig(
            d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
            encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64, bos_token_id=0, eos_token_id=2,
            decoder_start_token_id=2, forced_eos_token_id=None, **common),
        # pre-RMSNorm encoder-decoder, relative position buckets, no biases, tied embeddings (scaled output)
        "t5": lambda: transformers.T5Config(
            d_model=32, d_kv=16, d_ff=37, num_layers=2, num_decoder_layers=2, num_heads=2,
            relative_attention_num_buckets=8, relative_attention_max_distance=16, eos_token_id=1,
            decoder_start_token_id=0, **common),
    }[arch]()
    if hf_head is not None:
        config.num_labels = HEADS[hf_head][1].get("num_labels", 2)
        return getattr(transformers, INTERFACE_HEADS[arch][hf_head]).from_config(config)
    return AutoModel.from_config(config)


def attentions(arch: str) -> tuple:
    return ATTENTION_OF.get(arch, ATTENTION)


def backbone_path(arch: str, hf_head: Optional[str] = None) -> str:
    """Relative to the repository root: adapter_config.json's ``model_name`` stays machine independent."""
    return (BACKBONES_DIR / backbone_name(arch, hf_head)).relative_to(ROOT).as_posix()


def backbone_name(arch: str, hf_head: Optional[str] = None) -> str:
    return arch if hf_head is None else f"{arch}-{hf_head}"


def library_model(arch: str, attn: str, hf_head: Optional[str] = None):
    """The library's model of ``arch``: its ``*AdapterModel``, or (INTERFACE_ARCHS) the transformers class wrapped
    with ``adapters.init``, which picks the library's pre-supported plugin interface for the model type."""
    if arch not in INTERFACE_ARCHS:
        return adapters.AutoAdapterModel.from_pretrained(backbone_path(arch), attn_implementation=attn)
    auto = INTERFACE_HEADS[arch][hf_head] if hf_head else "AutoModel"
    model = getattr(transformers, auto).from_pretrained(backbone_model_or_path(arch, hf_head),
                                                        attn_implementation=attn)
    adapters.init(model)
    assert model.base_model.adapter_interface is not None, f"{arch}: the library used no plugin interface"
    return model


def make_inputs(arch: str, choices: bool = False) -> dict:
    """Rows of different lengths; padded positions hold ordinary tokens; a pad id inside attended text."""
    generator = torch.Generator().manual_seed(2024)
    ids = torch.randint(3, VOCAB, (4, 8), generator=generator)
    mask = torch.ones(4, 8, dtype=torch.long)  # row 0: plain
    mask[1, 5:] = 0
    # sliding-window archs: a padded query whose whole window is padding has no defined output (eager and sdpa
    # differ there), so row 3 keeps 5 attended tokens; every row is still longer than the window
    mask[3, 5 if arch in SLIDING_WINDOW else 3:] = 0
    ids[2, 3] = PAD_IDS[arch]  # row 2: the pad id inside real text, attention_mask 1 there
    inputs = {"input_ids": ids, "attention_mask": mask}
    if arch == "bert":
        types = torch.zeros_like(ids)
        types[:, 4:] = 1
        inputs["token_type_ids"] = types
    if arch in EOS_IDS:  # <eos> closes each row's attended text; decoder inputs of the same length
        for row in range(4):
            ids[row, int(mask[row].sum()) - 1] = EOS_IDS[arch]
        decoder = torch.randint(3, VOCAB, (4, 8), generator=generator)
        decoder[:, 0] = DECODER_START_IDS[arch]
        inputs["decoder_input_ids"] = decoder
    if choices:
        inputs = {k: v.view(2, 2, 8) for k, v in inputs.items()}
    return inputs


def randomise_new(model, before: set, salt: str) -> int:
    """Seeded noise in every parameter added after ``before`` (ids) that shares no storage with it."""
    old_ptrs = {p.data_ptr() for p in model.parameters() if id(p) in before}
    count = 0
    with torch.no_grad():
        for name, param in model.named_parameters():
            if id(param) in before or param.data_ptr() in old_ptrs:
                continue
            generator = torch.Generator().manual_seed(zlib.crc32(f"{salt}/{name}".encode()))
            std = FUSION_STD if ".adapter_fusion_layer." in f".{name}" else STD
            param.copy_(torch.randn(param.shape, generator=generator) * std)
            count += 1
    assert count, f"{salt}: nothing to randomise"
    return count


def library_save(save: Callable, folder: Path) -> None:
    """Save with the library as safetensors; for tied tensors (prefix pool) convert its pickle, deduplicated."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out"
        try:
            save(str(out), use_safetensors=True)
        except RuntimeError:
            shutil.rmtree(out, ignore_errors=True)
            save(str(out), use_safetensors=False)
            for pickled, safe in PICKLED_TO_SAFE.items():  # what `adapters-client convert` does
                if (out / pickled).exists():
                    pickle_to_safetensors(out / pickled, out / safe)
                    (out / pickled).unlink()
        shutil.copytree(out, folder)


def build_library(spec: Spec, attn: str):
    """The library's model with the case's adapters, heads and fusion added (weights untouched)."""
    model = library_model(spec.arch, attn, spec.hf_head)
    before = {id(p) for p in model.parameters()}
    for name, config in spec.adapters.items():
        model.add_adapter(name, config=config)
    if spec.share:
        model.share_parameters(lib.MultiTask(*spec.share))
    for name, kind in spec.heads.items():
        method, kwargs, _ = HEADS[kind]
        getattr(model, method)(name, **kwargs)
    if spec.fusion:
        model.add_adapter_fusion(lib.Fuse(*spec.fusion))
    if spec.adapters:
        randomise_new(model, before, f"{spec.family}/{spec.name}")
    return model.eval()


def save_parts(spec: Spec, model) -> tuple[dict, dict]:
    """Adapter (+ head) and fusion folders of a case; ``name -> folder relative to the case folders``."""
    saved, fusions = {}, {}
    head = {} if spec.arch in INTERFACE_ARCHS else {"with_head": True}  # interface: the head is in the backbone
    for name in spec.adapters:
        library_save(lambda out, **kw: model.save_adapter(out, name, **head, **kw),
                     spec.folder / "adapters" / name)
        saved[name] = f"../adapters/{name}"
    if spec.fusion:
        fusion_name = ",".join(spec.fusion)
        library_save(lambda out, **kw: model.save_adapter_fusion(out, fusion_name, **kw), spec.folder / "fusion")
        fusions[fusion_name] = "../fusion"
    return saved, fusions


def activate(model, spec: Spec, average: bool = True) -> None:
    if spec.average and average:
        model.average_adapter(spec.average["name"], spec.average["adapters"], weights=spec.average["weights"])
    model.set_active_adapters(spec.setup(), skip_layers=spec.skip_layers)
    head = active_head(spec)
    if head is not None:
        model.active_head = head


def active_head(spec: Spec) -> Optional[str]:
    """The head set explicitly (one head); Parallel / BatchSplit select their heads from the setup."""
    setup = spec.setup()
    if isinstance(setup, (lib.Parallel, lib.BatchSplit)) or not spec.heads:
        return None
    return list(spec.heads)[-1]


def forward(model, inputs: dict) -> dict:
    with torch.no_grad():
        return {k: v.detach().clone() for k, v in flatten_output(model(**inputs)).items()}


def reload_library(spec: Spec, attn: str, saved: dict, fusions: dict):
    """A fresh library model that loads the case's written folders (what the golden files reproduce)."""
    model = library_model(spec.arch, attn, spec.hf_head)
    base = spec.folder / ATTENTION[0]  # the relative folders in case.json start at a case folder
    for name, relative in saved.items():
        assert model.load_adapter(str(base / relative), use_safetensors=True) == name
    for relative in fusions.values():
        model.load_adapter_fusion(str(base / relative), use_safetensors=True)
    activate(model, spec)
    return model.eval()


def effect_check(spec: Spec, model, inputs: dict, outputs: dict) -> None:
    """The randomised parts really change the output (adapters off / no skipping gives something else)."""
    if not spec.adapters or isinstance(spec.setup(), (lib.Parallel, lib.BatchSplit)):
        return
    if spec.skip_layers:
        model.set_active_adapters(spec.setup())
    else:
        model.set_active_adapters(None)
    if active_head(spec) is not None:
        model.active_head = active_head(spec)
    assert max_diff(forward(model, inputs), outputs) > 1e-3, f"{spec.family}/{spec.name}: adapters had no effect"
    activate(model, spec, average=False)


def expected_outputs(spec: Spec, saved: dict, fusions: dict, inputs: dict, memory: dict, memory_attn: str):
    """``attn -> (outputs, source, notes)``: what OUR library must reproduce, checked against the library."""
    key = (spec.arch, spec.method)
    runs = {}
    for attn in attentions(spec.arch):
        if key in FAILS_UNDER_EAGER and attn == "eager":
            try:
                forward(reload_library(spec, attn, saved, fusions), inputs)
            except Exception:  # noqa: BLE001 - the library's own failure is the point
                continue
            raise AssertionError(f"{key}: the library no longer fails in eager mode; revisit FAILS_UNDER_EAGER")
        runs[attn] = forward(reload_library(spec, attn, saved, fusions), inputs)
    if spec.method in RELOAD_DIFFERS:
        assert max_diff(runs[memory_attn], memory) > 1e-4, f"{spec.name}: the library's reload is right now; revisit"
    else:
        assert max_diff(runs[memory_attn], memory) <= 1e-6, f"{spec.name}: saved files do not reproduce the model"
    notes = {"library_wrong_under_sdpa": WRONG_UNDER_SDPA.get(key), "library_fails_under_eager":
             FAILS_UNDER_EAGER.get(key)}
    if key in UNPADDED_INPUTS:
        notes["inputs_unpadded"] = UNPADDED_INPUTS[key]
    if len(runs) == 1 and key not in FAILS_UNDER_EAGER:
        return {attn: (outputs, f"library {attn}", notes) for attn, outputs in runs.items()}
    if key in FAILS_UNDER_EAGER:
        rows = rowwise(reload_library(spec, "sdpa", saved, fusions), inputs)
        assert max_diff(rows, runs["sdpa"]) > 1e-4, f"{key}: sdpa batch output is no longer wrong"
        return {attn: (rows, ROWWISE, notes) for attn in ATTENTION}
    diff = max_diff(runs["eager"], runs["sdpa"])
    if key in WRONG_UNDER_SDPA:
        assert diff > 1e-4, f"{key}: library eager and sdpa agree now ({diff:.2g}); revisit WRONG_UNDER_SDPA"
        if spec.method == "prompt_tuning":  # validates the row-wise construction used for FAILS_UNDER_EAGER
            rows = rowwise(reload_library(spec, "sdpa", saved, fusions), inputs)
            assert max_diff(rows, runs["eager"]) <= ATOL, f"{key}: row-wise sdpa differs from eager"
        return {attn: (runs["eager"], "library eager", notes) for attn in ATTENTION}
    assert diff <= ATOL, f"{spec.family}/{spec.name}: library eager and sdpa differ by {diff:.3g}"
    return {attn: (runs[attn], f"library {attn}", notes) for attn in ATTENTION}


def write_case(spec: Spec, attn: str, saved: dict, fusions: dict, inputs: dict, result) -> None:
    outputs, source, notes = result
    folder = spec.folder / attn
    setup = spec.setup()
    if spec.arch in INTERFACE_ARCHS:
        library_class = type(library_model(spec.arch, attn, spec.hf_head)).__name__
        notes = dict(notes, library_class=library_class, init_class=library_class if spec.hf_head else None)
        source += INTERFACE_SOURCE
    meta = {
        "id": f"{spec.family}/{spec.name}/{attn}", "family": spec.family, "arch": spec.arch,
        "method": spec.method, "attn_implementation": attn,
        "backbone": os.path.relpath(BACKBONES_DIR / backbone_name(spec.arch, spec.hf_head),
                                    folder).replace(os.sep, "/"),
        "adapters": saved, "fusions": fusions, "average_adapter": spec.average,
        "setup": setup.to_dict() if isinstance(setup, lib.AdapterCompositionBlock) else setup,
        "skip_layers": spec.skip_layers, "heads": {name: HEADS[kind][2] for name, kind in spec.heads.items()},
        "active_head": active_head(spec), "compare": sorted(outputs), "atol": ATOL, "expected_from": source,
        **notes, "generated_with": {"adapters": adapters.__version__, "transformers": transformers.__version__,
                                    "torch": torch.__version__.split("+")[0]},
    }
    tensors = {INPUT_PREFIX + k: v.contiguous() for k, v in inputs.items()}
    tensors.update({EXPECTED_PREFIX + k: v.contiguous() for k, v in outputs.items()})
    save_file(tensors, str(folder / DATA_FILE), metadata={"format": "pt"})
    (folder / CASE_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def generate(spec: Spec) -> None:
    for attn in attentions(spec.arch):
        (spec.folder / attn).mkdir(parents=True, exist_ok=True)
    memory_attn = "sdpa" if (spec.arch, spec.method) in FAILS_UNDER_EAGER else "eager"
    model = build_library(spec, memory_attn)
    saved, fusions = save_parts(spec, model)
    inputs = make_inputs(spec.arch, spec.choices)
    if spec.task_ids is not None:
        inputs["task_ids"] = torch.tensor(spec.task_ids)
    activate(model, spec)
    if (spec.arch, spec.method) in UNPADDED_INPUTS:
        assert max_diff(forward(model, inputs), rowwise(model, inputs)) > 1e-4, \
            f"{spec.name}: the library is right with padding now; revisit UNPADDED_INPUTS"
        inputs = dict(inputs, attention_mask=torch.ones_like(inputs["attention_mask"]))
    memory = forward(model, inputs)
    effect_check(spec, model, inputs, memory)
    for attn, result in expected_outputs(spec, saved, fusions, inputs, memory, memory_attn).items():
        write_case(spec, attn, saved, fusions, inputs, result)


# --- the case families ------------------------------------------------------------------------------------
SKIPPED = {("gpt2", "prompt_tuning"): "the library does not support prompt tuning on GPT-2",
           ("llama", "prompt_tuning"): "the library does not support prompt tuning on Llama",
           # grouped-query attention: k/v projections are narrower than q, VeRA's shared A/B cannot serve both
           ("llama", "vera"): "the library's VeRA fails on Llama's grouped-query k/v projections in the forward",
           ("llama", "dvora"): "the library's DVoRA fails on Llama's grouped-query k/v projections in the forward",
           # GPT-2's fused c_attn: the library's DoRA fails when added (its magnitude init), VeRA in the forward
           ("gpt2", "dora"): "the library's DoRA fails on GPT-2's fused c_attn (magnitude shape) when added",
           ("gpt2", "vera"): "the library's VeRA fails on GPT-2's fused c_attn in the forward pass (no lora_A)",
           ("gpt2", "dvora"): "the library's DVoRA fails on GPT-2's fused c_attn (magnitude shape) when added",
           ("mistral", "prompt_tuning"): "the library does not support prompt tuning on Mistral",
           ("bart", "prompt_tuning"): "the library does not support prompt tuning on BART",
           ("t5", "prompt_tuning"): "the library does not support prompt tuning on T5",
           ("mistral", "vera"): "the library's VeRA fails on Mistral's grouped-query k/v projections in the forward",
           ("mistral", "dvora"): "the library's DVoRA fails on Mistral's grouped-query k/v projections in the forward",
           ("qwen2", "vera"): "the library's VeRA fails on Qwen2's grouped-query k/v projections in the forward",
           ("qwen2", "dvora"): "the library's DVoRA fails on Qwen2's grouped-query k/v projections in the forward",
           ("modernbert", "dora"): "the library's DoRA fails on ModernBERT's fused Wqkv (magnitude shape)",
           ("modernbert", "vera"): "the library's VeRA fails on ModernBERT's fused Wqkv (no lora_A)",
           ("modernbert", "dvora"): "the library's DVoRA fails on ModernBERT's fused Wqkv",
           # MTL-LoRA's 3-D lora_B in the grouped conv1d of the fused q/k/v projection (ours refuses it when added)
           ("gpt2", "mtl_lora"): "the library's MTL-LoRA fails on GPT-2's fused c_attn in the forward pass",
           ("modernbert", "mtl_lora"): "the library's plugin interface (its only route to modernbert) has no mtl_lora",
           ("qwen2", "mtl_lora"): "the library's plugin interface (its only route to qwen2) has no mtl_lora"}
for _arch in INTERFACE_ARCHS:
    for _method in ("prefix_tuning", "prompt_tuning"):
        SKIPPED[(_arch, _method)] = f"the library's plugin interface (its only route to {_arch}) has no {_method}"
for _arch in INTERFACE_ARCHS:  # AdapterPlus: original_ln_after=False, which the hooked adapters refuse
    SKIPPED[(_arch, "adapter_plus")] = ("the library's plugin interface refuses original_ln_after=False "
                                        "(AdapterPlus)")
BN4, BN8 = "seq_bn[reduction_factor=4]", "seq_bn[reduction_factor=8]"


def method_specs() -> list:
    return [_multi_task(spec) if spec.method == "mtl_lora" and spec.arch not in MTL_NO_MULTITASK else spec
            for spec in _method_specs()]


def _multi_task(spec: Spec) -> Spec:
    """The MTL-LoRA case: MTL_ADAPTERS with one config, sharing A and B, a MultiTask setup routed by MTL_TASK_IDS."""
    config = spec.adapters["x"]
    spec.adapters = {name: config for name in MTL_ADAPTERS}
    spec.setup = lambda: lib.MultiTask(*MTL_ADAPTERS)
    spec.share, spec.task_ids = MTL_ADAPTERS, MTL_TASK_IDS
    return spec


def _method_specs() -> list:
    return [Spec("methods", f"{arch}-{method}", arch, {"x": config},
                 {} if arch in INTERFACE_ARCHS else
                 {"x": METHOD_HEADS.get((arch, method), METHOD_HEADS.get(method, "classification"))},
                 lambda: "x", method=method,
                 hf_head=INTERFACE_LM_HEAD[arch] if arch in INTERFACE_ARCHS and method in INTERFACE_LM_METHODS
                 else None)
            for arch in ARCHS for method, config in METHODS.items() if (arch, method) not in SKIPPED
            and (arch, method) not in NOT_IMPLEMENTED and arch in METHOD_ARCHS.get(method, ARCHS)]


def head_specs(head_types: dict) -> list:
    return [Spec("heads", f"{arch}-{kind}", arch, {"h": "seq_bn"}, {"h": kind}, lambda: "h",
                 choices=kind == "multiple_choice", method="seq_bn")
            for arch in ARCHS for kind, (_, _, library_type) in HEADS.items()
            if kind != "classification2" and library_type in head_types[arch] and arch not in INTERFACE_ARCHS] + [
        Spec("heads", f"{arch}-{kind}", arch, {"h": "seq_bn"}, {}, lambda: "h", method="seq_bn", hf_head=kind)
        for arch in INTERFACE_ARCHS for kind in INTERFACE_HEADS[arch]]


def composition_specs() -> list:
    specs = []
    for arch in ARCHS:
        two, heads = {"a": BN4, "b": BN8}, {"a": "classification", "b": "classification2"}
        specs += [
            Spec("compositions", f"{arch}-stack", arch, {"a": BN4, "b": "double_seq_bn[reduction_factor=8]"},
                 {"b": "classification"}, lambda: lib.Stack("a", "b")),
            Spec("compositions", f"{arch}-fuse", arch, {n: BN4 for n in "abc"}, setup=lambda: lib.Fuse("a", "b", "c"),
                 fusion=("a", "b", "c")),
            Spec("compositions", f"{arch}-parallel", arch, two, heads, lambda: lib.Parallel("a", "b")),
            Spec("compositions", f"{arch}-batchsplit", arch, two, heads,
                 lambda: lib.BatchSplit("a", "b", batch_sizes=[2, 2])),
            Spec("compositions", f"{arch}-average", arch, two, setup=lambda: lib.Average("a", "b", weights=[0.3, 0.7])),
            Spec("compositions", f"{arch}-average-adapter", arch, {"a": BN4, "b": BN4}, setup=lambda: "avg",
                 average={"name": "avg", "adapters": ["a", "b"], "weights": [0.3, 0.7]}),
            Spec("compositions", f"{arch}-adapterdrop", arch, {"a": BN4}, {"a": "classification"}, lambda: "a",
                 skip_layers=[0]),
        ]
    for spec in specs:  # interface archs: no flex heads in the library, so no per-branch heads either
        if spec.arch in INTERFACE_ARCHS:
            spec.heads = {}
    # the library refuses Parallel on model types outside its list (qwen2, modernbert); tests/client/test_new_rows.py
    # proves ours there equal to each adapter run alone
    return [spec for spec in specs if spec.arch not in INTERFACE_ARCHS or not spec.name.endswith("-parallel")]


def backbone_specs() -> list:
    return [Spec("plain", arch, arch, {}, setup=lambda: None) for arch in ARCHS]


def check_skipped() -> None:
    """Every skipped combination is really refused by the library."""
    for (arch, method), why in SKIPPED.items():
        model = library_model(arch, "eager")
        try:
            model.add_adapter("x", config=METHODS[method])
            model.set_active_adapters("x")  # some fail only when run (VeRA on GPT-2)
            forward(model.eval(), make_inputs(arch))
        except Exception:  # noqa: BLE001 - any refusal counts
            continue
        raise AssertionError(f"the library accepts {method} on {arch} now ({why}); add the case")


def main(argv=None) -> None:
    import argparse
    from fnmatch import fnmatch

    parser = argparse.ArgumentParser(prog="python -m tests.client.golden.make_golden")
    parser.add_argument("--only", nargs="+", metavar="GLOB",
                        help="regenerate only the cases whose family/name matches (e.g. 'methods/*-compacter'), "
                             "leaving every other case as it is; default: rewrite every case")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    stochastic_depth_without_torchvision()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    logging.getLogger("adapters").setLevel(logging.ERROR)  # "adapters available but none activated" (on purpose)
    if not args.only:
        shutil.rmtree(CASES_DIR, ignore_errors=True)
    head_types = {}
    for arch in ARCHS:
        if arch in INTERFACE_ARCHS:  # the transformers classes' own heads (adapters.init keeps them)
            head_types[arch] = {HEADS[kind][2] for kind in INTERFACE_HEADS[arch]}
            continue
        head_types[arch] = set(type(adapters.AutoAdapterModel.from_pretrained(backbone_model_or_path(arch))).head_types)
    check_skipped()
    specs = backbone_specs() + method_specs() + head_specs(head_types) + composition_specs()
    # a method case whose head the library does not offer on that arch (DeBERTa-v2 has no causal LM head)
    specs = [spec for spec in specs if all(HEADS[kind][2] in head_types[spec.arch] for kind in spec.heads.values())]
    if args.only:
        specs = [spec for spec in specs if any(fnmatch(f"{spec.family}/{spec.name}", g) for g in args.only)]
        if not specs:
            parser.error(f"no case matches {args.only}")
    for spec in specs:
        if args.only:
            shutil.rmtree(spec.folder, ignore_errors=True)
        generate(spec)
        print(f"{spec.family}/{spec.name}", flush=True)
    size = sum(p.stat().st_size for p in CASES_DIR.rglob("*") if p.is_file())
    print(f"{sum(len(attentions(spec.arch)) for spec in specs)} cases written; {size / 1e6:.2f} MB under {CASES_DIR.relative_to(ROOT)}")


def backbone_model_or_path(arch: str, hf_head: Optional[str] = None) -> str:
    """The saved backbone of ``arch`` (written on first use; deterministic, so concurrent writers agree)."""
    name = backbone_name(arch, hf_head)
    if not (BACKBONES_DIR / name / "model.safetensors").is_file():
        BACKBONES_DIR.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=BACKBONES_DIR))
        backbone_model(arch, hf_head).save_pretrained(str(staging), safe_serialization=True)
        try:
            os.replace(staging, BACKBONES_DIR / name)
        except OSError:  # another generator wrote it first
            shutil.rmtree(staging, ignore_errors=True)
    return backbone_path(arch, hf_head)


if __name__ == "__main__":
    main()
