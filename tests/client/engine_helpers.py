"""Tiny in-memory backbones and helpers shared by the engine tests."""

from __future__ import annotations

import torch

ARCHS = ("bert", "roberta", "xlm-roberta", "distilbert", "gpt2", "electra", "deberta-v2", "llama", "mistral", "qwen2",
         "modernbert", "bart", "t5")


def tiny_config(arch: str):
    """A HF config small enough to run in milliseconds."""
    from transformers import BertConfig, DistilBertConfig, GPT2Config, RobertaConfig, XLMRobertaConfig

    common = dict(vocab_size=99)
    if arch == "bert":
        return BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, **common)
    if arch == "roberta":
        return RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                             **common)
    if arch == "xlm-roberta":
        return XLMRobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                                **common)
    if arch == "distilbert":
        return DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=37, **common)
    if arch == "gpt2":
        return GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=64, **common)
    if arch == "electra":  # embedding_size != hidden_size: the embeddings are projected (embeddings_project)
        from transformers import ElectraConfig

        return ElectraConfig(embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=37, **common)
    if arch == "deberta-v2":  # relative positions (log buckets, c2p + p2c) as in DeBERTa-v3
        from transformers import DebertaV2Config

        return DebertaV2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                               relative_attention=True, position_buckets=8, max_relative_positions=16,
                               pos_att_type=["p2c", "c2p"], position_biased_input=False, norm_rel_ebd="layer_norm",
                               share_att_key=True, type_vocab_size=0, **common)
    if arch == "llama":  # grouped-query attention: 2 key/value heads for 4 query heads (as Mistral, Qwen2)
        from transformers import LlamaConfig

        return LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                           intermediate_size=37, max_position_embeddings=64, pad_token_id=0, **common)
    if arch in ("mistral", "qwen2"):  # Llama's layout; a sliding window of 4 (< the tests' sequence lengths)
        from transformers import MistralConfig, Qwen2Config

        gqa = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                   intermediate_size=37, max_position_embeddings=64, pad_token_id=0, sliding_window=4, **common)
        if arch == "mistral":
            return MistralConfig(**gqa)
        return Qwen2Config(use_sliding_window=True, max_window_layers=1, **gqa)  # layer 0 global, layer 1 sliding
    if arch == "modernbert":  # layer 0 global, layer 1 local (window 4); no torch.compile of the MLP
        from transformers import ModernBertConfig

        return ModernBertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                                global_attn_every_n_layers=2, local_attention=4, max_position_embeddings=64,
                                pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2,
                                reference_compile=False, **common)
    if arch == "bart":  # encoder-decoder: 2 + 2 post-LN layers; without decoder_input_ids the decoder reads the
        # input shifted right (BartModel's default)
        from transformers import BartConfig

        return BartConfig(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                          decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64,
                          forced_eos_token_id=None, **common)
    if arch == "t5":  # pre-RMSNorm encoder-decoder with relative position buckets; decoder inputs: input_ids
        # shifted right (the AdapterModel makes them, as the library's T5AdapterModel)
        from transformers import T5Config

        return T5Config(d_model=32, d_kv=16, d_ff=37, num_layers=2, num_decoder_layers=2, num_heads=2,
                        relative_attention_num_buckets=8, relative_attention_max_distance=16, eos_token_id=1,
                        decoder_start_token_id=0, pad_token_id=0, **common)
    raise ValueError(arch)


def tiny_model(arch: str = "bert", seed: int = 0):
    from adapters_client import AutoAdapterModel

    torch.manual_seed(seed)
    return AutoAdapterModel.from_config(tiny_config(arch)).eval()


def tiny_inputs(batch: int = 2, length: int = 7, seed: int = 1) -> dict:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 99, (batch, length), generator=generator)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, -2:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def randomise(modules, seed: int = 5, std: float = 0.1) -> None:
    """Non-trivial weights (most methods start as the identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in modules:
            for param in module.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * std)


def hidden(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        out = model(**inputs)
    return out[0] if not hasattr(out, "last_hidden_state") else out.last_hidden_state
