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
    # host adds the residual (``layer_norm`` None): a LayerNorm the adapter itself applies to (hidden + residual)
    # before it runs, as the library's plugin interface does with ``layer_ln_1`` (ModernBERT: ``mlp_norm``); the
    # host's own call of that module is untouched
    pre_norm: Optional[str] = None


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
    # (None: invertible adapters are refused, T5: its stack's dropout runs after the embeddings and again at the end)
    embedding_output: Optional[str] = "embeddings"
    # the library reaches this architecture only through its plugin interface (``adapters.init`` with an
    # ``AdapterModelInterface``; Qwen2, ModernBERT): no ``*AdapterModel`` class, bottleneck adapters hooked into the
    # host, which refuses ``original_ln_after=False``; ``model_class`` is then the base model's class name
    library_interface: bool = False
    # attention implementations under which transformers 4.x runs the model on unpadded (tokens, hidden) tensors
    # (ModernBERT's flash_attention_2): a forward with adapters active is refused there (the per-row steps and the
    # batch replication need the batch dimension, and no reference runs that path); transformers 5 never unpads
    unpadded_attention: tuple = ()
    # encoder-decoder models (BART): ``layers`` is the encoder's list and ``decoder_layers`` the decoder's; the
    # library numbers them on (encoder 0..n-1, decoder n..n+m-1: leave_out, skip_layers and reduction factors
    # use those indices). ``decoder_sites``: the bottleneck positions of a decoder layer (with the cross-attention
    # site, location key "cross_adapter"); ``cross_attention``: a decoder layer's cross-attention module, whose
    # q/k/v (``cross_lora_attn``) LoRA wraps under the library's "selfattn" location
    decoder_layers: Optional[str] = None
    decoder_sites: tuple = ()
    cross_attention: Optional[str] = None
    cross_lora_attn: Optional[dict] = None
    # prefix keys (the library's location keys) of the encoder's self-attention and the decoder's cross-attention;
    # ``prefix_location`` is then the decoder self-attention's
    encoder_prefix_location: Optional[str] = None
    cross_prefix_location: Optional[str] = None
    # path from the base model to the module that carries the ``invertible_adapters`` dict ("": the base model;
    # BART: "encoder", the library's ``invertible_adapters_base_name``)
    invertible_host: str = ""
    # T5: the decoder output reaches the heads (and a forward without head) times d_model**-0.5 when the config
    # ties the word embeddings; sequence heads read the unscaled output at the last <eos>
    tied_output_scale: bool = False
    # method of the base model that makes decoder_input_ids from input_ids (or from a seq2seq LM head's labels)
    # when none are given (T5: ``_shift_right``); None: the base model does it itself (BART) or needs them
    decoder_inputs_from: Optional[str] = None
    # LoRA's "intermediate" projection where the layer has it instead of ``lora_intermediate`` (T5's gated FF:
    # ``DenseReluDense.wi_1``, as the library chooses)
    gated_lora_intermediate: Optional[str] = None

    @property
    def encoder_decoder(self) -> bool:
        return self.decoder_layers is not None

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

# Mistral: the library's native MistralAdapterModel has Llama's layout (its sliding window lives in the mask)
_MISTRAL = replace(_LLAMA, model_type="mistral", model_class="MistralAdapterModel")

# Qwen2: Llama's layout (biases on q/k/v, optional sliding window per layer); adapters 1.3.0 reaches it only through
# its pre-supported plugin interface: sites after the attention and the MLP output (residual: the inputs of
# input_layernorm / post_attention_layernorm), LoRA "intermediate" = mlp.up_proj and "output" = mlp.down_proj
# (Llama's native row has them the other way round); no prefix or prompt tuning there
_QWEN2 = replace(
    _LLAMA, model_type="qwen2", model_class="Qwen2Model",
    sites=(
        BottleneckSite("mh_adapter", "attention_adapters", True, "self_attn",
                       ResidualSource("input_layernorm", 0, ("hidden_states", "input")), None),
        BottleneckSite("output_adapter", "output_adapters", True, "mlp",
                       ResidualSource("post_attention_layernorm", 0, ("hidden_states", "input")), None),
    ),
    lora_intermediate="mlp.up_proj", lora_output="mlp.down_proj", prefix_route=None, prefix_heads_attr=None,
    library_interface=True,
)

# ModernBERT: pre-LN encoder, fused Wqkv, GLU MLP (Wi -> Wo), alternating global / sliding-window attention;
# adapters 1.3.0's pre-supported plugin interface: the attention site after attn.Wo with the attention's (already
# normalised) input as residual and mlp_norm applied by the adapter (``layer_ln_1``), the output site after the
# MLP with its (normalised) input as residual; LoRA/IA3 on the fused Wqkv, mlp.Wi ("intermediate"), mlp.Wo ("output")
_MODERNBERT = ArchSpec(
    model_type="modernbert",
    model_class="ModernBertModel",
    base_prefix="model",
    layers="layers",
    sites=(
        BottleneckSite("mh_adapter", "attention_adapters", True, "attn.Wo",
                       ResidualSource("attn", 0, ("hidden_states",)), None, pre_norm="mlp_norm"),
        BottleneckSite("output_adapter", "output_adapters", True, "mlp",
                       ResidualSource("mlp", 0, ("hidden_states",)), None),
    ),
    lora_attn={},
    merged_qkv="attn.Wqkv",
    lora_intermediate="mlp.Wi",
    lora_output="mlp.Wo",
    self_attention="attn",
    prompt_embeddings=None,  # the plugin interface does not support prompt tuning on ModernBERT
    prefix_route=None,  # nor prefix tuning
    library_interface=True,
    unpadded_attention=("flash_attention_2",),
)

# BART: post-LN encoder-decoder (BERT's residual + LayerNorm order, functional dropout). Sites after self-attention,
# the decoder's cross-attention (encoder_attn) and fc2, each followed by the host's residual + LayerNorm, as the
# library's containers attention_adapters / cross_attention_adapters / output_adapters; LoRA on every attention's
# q/k/v (self and cross: the library's "selfattn"), fc1 ("intermediate"), fc2 ("output"); prefixes on the encoder
# self-attention ("encoder_prefix"), decoder self-attention ("self_prefix") and cross-attention ("cross_prefix");
# the library has no prompt tuning for BART; invertible adapters run on the encoder's layernorm_embedding output
_BART_SELF = BottleneckSite("mh_adapter", "attention_adapters", True, "self_attn",
                            ResidualSource("", 0, ("hidden_states",)), "self_attn_layer_norm")
_BART_OUT = BottleneckSite("output_adapter", "output_adapters", True, "fc2",
                           ResidualSource("fc1", 0, ("input",)), "final_layer_norm")
_BART = ArchSpec(
    model_type="bart",
    model_class="BartAdapterModel",
    base_prefix="model",
    layers="encoder.layers",
    sites=(_BART_SELF, _BART_OUT),
    decoder_layers="decoder.layers",
    decoder_sites=(_BART_SELF,
                   BottleneckSite("cross_adapter", "cross_attention_adapters", True, "encoder_attn",
                                  ResidualSource("encoder_attn", 0, ("hidden_states",)), "encoder_attn_layer_norm"),
                   _BART_OUT),
    lora_attn={"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj"},
    cross_lora_attn={"q": "encoder_attn.q_proj", "k": "encoder_attn.k_proj", "v": "encoder_attn.v_proj"},
    lora_intermediate="fc1",
    lora_output="fc2",
    self_attention="self_attn",
    cross_attention="encoder_attn",
    prompt_embeddings=None,
    prefix_location="self_prefix",
    encoder_prefix_location="encoder_prefix",
    cross_prefix_location="cross_prefix",
    hidden_size_attr="d_model",
    refused_heads=("tagging", "multiple_choice", "causal_lm", "masked_lm"),
    embedding_output="encoder.layernorm_embedding",
    invertible_host="encoder",
)

# T5: pre-RMSNorm encoder-decoder whose blocks hold their sub-layers in ``layer`` (self-attention, the decoder's
# cross-attention, the FF last: "layer.-1"); each sub-layer carries the library's ``adapters`` dict itself and adds
# its residual (the adapter's output replaces that sum, as on GPT-2). LoRA on q/k/v of every attention (no
# biases), DenseReluDense.wi ("intermediate") and .wo ("output"); the decoder output is scaled by d_model**-0.5
# before the heads when the embeddings are tied (``tied_output_scale``); without decoder inputs the model shifts
# input_ids (or a seq2seq LM head's labels) right (``decoder_inputs_from``). Prefixes through the cache (the
# attention computes its relative position bias over prefix + keys, as the library's); no prompt tuning in the
# library; invertible adapters refused (the stack's dropout also runs after its final norm: no single hook).
def _t5_site(key: str, sublayer: str, hidden: str) -> BottleneckSite:
    return BottleneckSite(key, sublayer, False, f"{sublayer}.{hidden}", ResidualSource(sublayer, 0, ("hidden_states",)),
                          None)


_T5_SELF = _t5_site("mh_adapter", "layer.0", "SelfAttention")
_T5_FF = _t5_site("output_adapter", "layer.-1", "DenseReluDense")
_T5 = ArchSpec(
    model_type="t5",
    model_class="T5AdapterModel",
    base_prefix="transformer",
    layers="encoder.block",
    sites=(_T5_SELF, _T5_FF),
    decoder_layers="decoder.block",
    decoder_sites=(_T5_SELF, _t5_site("cross_adapter", "layer.1", "EncDecAttention"), _T5_FF),
    lora_attn={"q": "layer.0.SelfAttention.q", "k": "layer.0.SelfAttention.k", "v": "layer.0.SelfAttention.v"},
    cross_lora_attn={"q": "layer.1.EncDecAttention.q", "k": "layer.1.EncDecAttention.k",
                     "v": "layer.1.EncDecAttention.v"},
    lora_intermediate="layer.-1.DenseReluDense.wi",
    gated_lora_intermediate="layer.-1.DenseReluDense.wi_1",
    lora_output="layer.-1.DenseReluDense.wo",
    self_attention="layer.0.SelfAttention",
    cross_attention="layer.1.EncDecAttention",
    prompt_embeddings=None,
    prefix_location="self_prefix",
    encoder_prefix_location="encoder_prefix",
    cross_prefix_location="cross_prefix",
    hidden_size_attr="d_model",
    refused_heads=("tagging", "multiple_choice", "causal_lm", "masked_lm"),
    embedding_output=None,
    invertible_host="encoder",
    tied_output_scale=True,
    decoder_inputs_from="_shift_right",
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
    "bart": _BART,
    "t5": _T5,
    "mistral": _MISTRAL,
    "qwen2": _QWEN2,
    "modernbert": _MODERNBERT,
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
        if part.startswith("-") and part[1:].isdigit():  # "-1": the last entry of a ModuleList (T5's FF layer)
            try:
                child = module[int(part)]
            except (TypeError, IndexError):
                child = None
        else:
            child = getattr(module, part, None)
        if child is None:
            from .hooks import target_missing

            raise target_missing(arch, path, f"{type(module).__name__} has no attribute {part!r}")
        module = child
    return module
