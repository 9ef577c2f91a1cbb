"""Where each supported architecture keeps the modules the adapter methods attach to (a data table).

Paths are dotted attribute paths; layer-relative paths start at one transformer layer. The weight names the
``adapters`` library uses follow from where the ``adapters`` / ``loras`` dicts are attached.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from .errors import IncompatibleAdapter


@dataclass(frozen=True)
class ResidualSource:
    """Where a sub-layer's residual input is read: an argument of ``module``'s call (captured by a pre-hook)."""

    module: str  # layer-relative path; "" = the layer itself
    index: int
    kwargs: tuple = ()


@dataclass(frozen=True)
class BottleneckSite:
    """One bottleneck adapter position in a layer (after attention or after the FFN)."""

    location_key: str  # "mh_adapter" or "output_adapter"
    attach: str  # module that carries the ``adapters`` dict (created when ``container`` is True)
    container: bool
    hidden: str  # module whose output (or output[0]) is the sub-layer output before residual + LN
    residual: ResidualSource
    layer_norm: Optional[str]  # post-LN models: LN applied to (hidden + residual); None: the host adds residual


PREFIX_ROUTES = ("cache", "projections", "disentangled")


@dataclass(frozen=True)
class ArchSpec:
    """Everything the engine, the methods, the model classes and the heads need to know about one architecture.

    Adding an architecture is adding one row to ``ARCHITECTURES`` (and its golden/parity cases).
    """

    model_type: str
    model_class: str  # the adapters library's class name, written into adapter_config.json ("model_class")
    base_prefix: str  # attribute of the base model in *AdapterModel classes ("bert", "transformer", ...)
    layers: str  # path from the base model to the list of layers
    sites: tuple  # BottleneckSite per bottleneck position
    lora_attn: dict  # "q"/"k"/"v" -> layer-relative path of the Linear
    lora_intermediate: str
    lora_output: str
    self_attention: str  # layer-relative path of the self-attention module (prefix tuning)
    # prompt tuning: path from the base model to the module whose output the soft prompt joins (None: refused)
    prompt_embeddings: Optional[str] = "embeddings"
    # prefix tuning: how the prefix reaches attention, "cache" (the attention's key/value cache argument) or
    # "projections" (through the key/value projections, methods/prefix_tuning/projections.py), "disentangled"
    # (DeBERTa-v2: prefix keys/values appended to the projections' outputs, relative-position bias computed
    # without them, methods/prefix_tuning/disentangled.py); None: refused
    prefix_route: Optional[str] = "cache"
    prefix_location: str = "self_prefix"  # key of the prefix module in the library's weights
    # config attribute with the number of key/value heads the prefix has (grouped-query attention:
    # ``num_key_value_heads``, as the library does); None: ``num_attention_heads``. The head width stays
    # hidden size / num_attention_heads.
    prefix_heads_attr: Optional[str] = None
    hidden_size_attr: str = "hidden_size"
    merged_qkv: Optional[str] = None  # fused q/k/v projection (GPT-2's c_attn)
    causal: bool = False  # decoder-only: attention is causal
    # sequence-level heads read the last non-padding token instead of the first token (decoder-only models)
    last_token_heads: bool = False
    # config attribute with the width of the prompt-embeddings module's output (the soft prompt's width), when it
    # is not the hidden size (ELECTRA: ``embedding_size``, projected to the hidden size after the embeddings)
    prompt_size_attr: Optional[str] = None
    # argument of the prompt-embeddings module that receives the attention mask (DeBERTa-v2: ``mask``, which it
    # multiplies into its output): prompt tuning gives that module the mask without the prompt columns
    prompt_mask_argument: Optional[str] = None
    # head types the library's *AdapterModel does not offer for this architecture beyond what ``last_token_heads``
    # implies (DeBERTa-v2: no causal LM head); ``heads.dispatch.refuses_head`` reads it
    refused_heads: tuple = ()
    # path from the base model to the module whose output is the embedding output (invertible adapters run on it)
    embedding_output: str = "embeddings"

    def __post_init__(self) -> None:
        if self.prefix_route is not None and self.prefix_route not in PREFIX_ROUTES:
            raise ValueError(f"{self.model_type}: prefix_route must be one of {PREFIX_ROUTES} or None")


def _bert_like(model_type: str, prefix: str, model_class: str, **extra) -> ArchSpec:
    def site(key: str, host: str) -> BottleneckSite:
        return BottleneckSite(
            location_key=key,
            attach=host,
            container=False,
            hidden=f"{host}.dropout",
            residual=ResidualSource(host, 1, ("input_tensor",)),
            layer_norm=f"{host}.LayerNorm",
        )

    return ArchSpec(
        model_type=model_type,
        model_class=model_class,
        base_prefix=prefix,
        layers="encoder.layer",
        sites=(site("mh_adapter", "attention.output"), site("output_adapter", "output")),
        lora_attn={"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value"},
        lora_intermediate="intermediate.dense",
        lora_output="output.dense",
        self_attention="attention.self",
        **extra,
    )


_DISTILBERT = ArchSpec(
    model_type="distilbert",
    model_class="DistilBertAdapterModel",
    base_prefix="distilbert",
    layers="transformer.layer",
    sites=(
        BottleneckSite("mh_adapter", "attention_adapters", True, "attention",
                       ResidualSource("attention", 0, ("query", "hidden_states")), "sa_layer_norm"),
        BottleneckSite("output_adapter", "output_adapters", True, "ffn",
                       ResidualSource("ffn", 0, ("input",)), "output_layer_norm"),
    ),
    lora_attn={"q": "attention.q_lin", "k": "attention.k_lin", "v": "attention.v_lin"},
    lora_intermediate="ffn.lin1",
    lora_output="ffn.lin2",
    self_attention="attention",
    # no cache interface in its attention: the prefix enters through k_lin/v_lin; the library's key is "self"
    prefix_route="projections",
    prefix_location="self",
    hidden_size_attr="dim",
)

_GPT2 = ArchSpec(
    model_type="gpt2",
    model_class="GPT2AdapterModel",
    base_prefix="transformer",
    layers="h",
    sites=(
        BottleneckSite("mh_adapter", "attention_adapters", True, "attn",
                       ResidualSource("", 0, ("hidden_states",)), None),
        BottleneckSite("output_adapter", "output_adapters", True, "mlp",
                       ResidualSource("ln_2", 0, ("input",)), None),
    ),
    lora_attn={},
    lora_intermediate="mlp.c_fc",
    lora_output="mlp.c_proj",
    self_attention="attn",
    prompt_embeddings=None,  # the adapters library does not support prompt tuning on GPT-2 either
    embedding_output="drop",  # token + position embeddings after dropout (where the library hooks)
    hidden_size_attr="n_embd",
    merged_qkv="attn.c_attn",
    causal=True,
    last_token_heads=True,
)

# DeBERTa-v2 (and v3): BERT's sub-layer layout, disentangled self-attention without a cache argument
_DEBERTA_V2 = replace(
    _bert_like("deberta-v2", "deberta", "DebertaV2AdapterModel", prefix_route="disentangled",
               prompt_mask_argument="mask", refused_heads=("causal_lm",)),
    lora_attn={"q": "attention.self.query_proj", "k": "attention.self.key_proj", "v": "attention.self.value_proj"},
)

# Llama (also the layout of Mistral and Qwen2): pre-RMSNorm decoder, RoPE, grouped-query attention. The library
# wraps mlp.down_proj as its "intermediate" LoRA location and mlp.up_proj as "output"; no prompt tuning there.
_LLAMA = ArchSpec(
    model_type="llama",
    model_class="LlamaAdapterModel",
    base_prefix="model",
    layers="layers",
    sites=(
        BottleneckSite("mh_adapter", "attention_adapters", True, "self_attn",
                       ResidualSource("", 0, ("hidden_states",)), None),
        BottleneckSite("output_adapter", "output_adapters", True, "mlp",
                       ResidualSource("post_attention_layernorm", 0, ("hidden_states",)), None),
    ),
    lora_attn={"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj"},
    lora_intermediate="mlp.down_proj",
    lora_output="mlp.up_proj",
    self_attention="self_attn",
    prompt_embeddings=None,  # the adapters library does not support prompt tuning on Llama either
    embedding_output="embed_tokens",  # the library's embedding hook (invertible adapters) is on embed_tokens
    prefix_heads_attr="num_key_value_heads",
    causal=True,
    last_token_heads=True,
)

ARCHITECTURES = {
    "bert": _bert_like("bert", "bert", "BertAdapterModel"),
    "roberta": _bert_like("roberta", "roberta", "RobertaAdapterModel"),
    "xlm-roberta": _bert_like("xlm-roberta", "roberta", "XLMRobertaAdapterModel"),
    "distilbert": _DISTILBERT,
    "gpt2": _GPT2,
    # ELECTRA: BERT's layer layout; the soft prompt joins the embeddings before ``embeddings_project``
    "electra": _bert_like("electra", "electra", "ElectraAdapterModel", prompt_size_attr="embedding_size"),
    "deberta-v2": _DEBERTA_V2,
    "llama": _LLAMA,
}


def get_spec(model_type: str) -> ArchSpec:
    """The table entry for ``model_type``; IncompatibleAdapter for an unsupported architecture."""
    spec = ARCHITECTURES.get(model_type)
    if spec is None:
        supported = ", ".join(sorted(ARCHITECTURES))
        raise IncompatibleAdapter(f"model type {model_type!r} is not supported; supported: {supported}",
                                  field="model_type")
    return spec


def find_spec(model_type) -> Optional[ArchSpec]:
    """The table entry for ``model_type``, or None for an unsupported architecture."""
    return ARCHITECTURES.get(model_type)


def supporting(feature: str) -> list:
    """Model types whose row sets ``feature`` (e.g. "prefix_route", "prompt_embeddings"), sorted."""
    return sorted(t for t, spec in ARCHITECTURES.items() if getattr(spec, feature))


def get_path(module, path: str, arch: Optional[str] = None):
    """``get_path(layer, "attention.output")``; "" returns ``module``.

    A missing attribute is a HookTargetMissing naming ``arch``, the path and the ``transformers`` version.
    """
    for part in filter(None, path.split(".")):
        child = getattr(module, part, None)
        if child is None:
            from .hooks import target_missing

            raise target_missing(arch, path, f"{type(module).__name__} has no attribute {part!r}")
        module = child
    return module
