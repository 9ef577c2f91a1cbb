"""Prompt tuning: learned soft-prompt embeddings joined to the embedding output; the attention mask grows."""

from __future__ import annotations

import inspect

import torch
from torch import nn

from ...architectures import get_path
from ...context import ForwardContext
from ...errors import IncompatibleAdapter, InvalidAdapterConfig
from ...hooks import note_ran, pick_parameter
from ...weights import init_overwritten

def string_init(config, model_config, word_embeddings: nn.Module) -> torch.Tensor:
    """``prompt_init="from_string"`` as in the adapters library: the tokenizer named by the model config's
    ``tokenizer_name_or_path`` encodes ``prompt_init_text`` (special tokens included), the ids are repeated up to
    ``prompt_length`` and cut there, and the word embeddings of those ids (``get_input_embeddings()``) are the
    initial prompt. A missing or unloadable tokenizer is an InvalidAdapterConfig when the adapter is added."""
    source = getattr(model_config, "tokenizer_name_or_path", None)
    if not isinstance(source, str) or not source:
        raise InvalidAdapterConfig("prompt_init 'from_string' needs the tokenizer of the model: set "
                                   "model.config.tokenizer_name_or_path (a folder or a cached Hub name) first, as "
                                   "the adapters library reads it", field="prompt_init")
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
    except Exception as exc:  # offline without a cached copy, not a tokenizer folder, ...
        raise InvalidAdapterConfig(f"prompt_init 'from_string': cannot load the tokenizer {source!r} "
                                   f"({type(exc).__name__}: {exc})", field="prompt_init") from None
    ids = list(tokenizer(config.prompt_init_text)["input_ids"])
    if not ids:
        raise InvalidAdapterConfig("prompt_init 'from_string': prompt_init_text gives no tokens",
                                   field="prompt_init_text")
    ids = (ids * -(-config.prompt_length // len(ids)))[: config.prompt_length]
    vocabulary = word_embeddings.weight.shape[0]
    if max(ids) >= vocabulary:
        raise InvalidAdapterConfig(f"prompt_init 'from_string': the tokenizer {source!r} gives id {max(ids)}, but "
                                   f"the model's embeddings hold {vocabulary} tokens", field="prompt_init")
    with torch.no_grad():
        weight = word_embeddings.weight
        return word_embeddings(torch.tensor(ids, dtype=torch.long, device=weight.device)).float()


class SoftPrompt(nn.Module):
    """``prompt_embedding``: (prompt_length, hidden) as in the adapters library."""

    def __init__(self, config, hidden: int, word_embeddings: nn.Module, model_config=None):
        super().__init__()
        self.config = config
        self.prompt_embedding = nn.Embedding(config.prompt_length, hidden)
        if config.init_weights_seed is not None:
            torch.manual_seed(config.init_weights_seed)
        scale = config.random_uniform_scale
        if config.prompt_init == "from_string":
            if not init_overwritten():  # loading: the saved prompt replaces it, no tokenizer needed
                with torch.no_grad():
                    self.prompt_embedding.weight.copy_(string_init(config, model_config, word_embeddings))
            return
        nn.init.uniform_(self.prompt_embedding.weight, a=-scale, b=scale)

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        prompt = self.prompt_embedding.weight.unsqueeze(0).expand(embedded.shape[0], -1, -1).to(embedded.dtype)
        if self.config.combine == "prefix_after_bos":
            return torch.cat([embedded[:, :1], prompt, embedded[:, 1:]], dim=1)
        return torch.cat([prompt, embedded], dim=1)


class PromptTuning:
    """Engine extension holding ``<base>.prompt_tuning.prompt_tunings.<name>``."""

    def __init__(self, engine):
        spec = engine.spec
        if spec.prompt_embeddings is None:
            raise InvalidAdapterConfig(f"prompt tuning is not supported for {spec.model_type}", field="architecture")
        self.engine = engine
        pool = nn.Module()
        pool.add_module("prompt_tunings", nn.ModuleDict())
        engine.base_model.add_module("prompt_tuning", pool)
        self.prompts: nn.ModuleDict = pool.prompt_tunings
        self.embeddings_path = spec.prompt_embeddings
        embeddings = get_path(engine.base_model, self.embeddings_path, spec.model_type)
        embeddings.register_forward_hook(self._on_embeddings)
        self.mask_argument = spec.prompt_mask_argument
        if self.mask_argument is not None:  # the embeddings read the mask: they get it without the prompt columns
            pick_parameter(embeddings, (self.mask_argument,), spec.model_type, self.embeddings_path,
                           "the attention mask of the embeddings")
            self.mask_index = list(inspect.signature(embeddings.forward).parameters).index(self.mask_argument)
            embeddings.register_forward_pre_hook(self._before_embeddings, with_kwargs=True)
        for layer in get_path(engine.base_model, spec.layers, spec.model_type):
            layer.register_forward_pre_hook(_fix_layer_mask, with_kwargs=True)

    def add(self, name: str, config) -> None:
        ref = self.engine._reference_param()
        module = SoftPrompt(config, self._width(), self.engine.base_model.get_input_embeddings(),
                            self.engine.model_config)
        self.prompts[name] = module.to(device=ref.device, dtype=ref.dtype)

    def _width(self) -> int:
        """The soft prompt's width: the row's ``prompt_size_attr`` of the config (else the hidden size)."""
        attr = self.engine.spec.prompt_size_attr
        if attr is None:
            return self.engine.hidden_size
        width = getattr(self.engine.model_config, attr, None)
        if not isinstance(width, int):
            raise IncompatibleAdapter(f"{self.engine.spec.model_type}: the model config has no integer {attr!r} "
                                      f"(the width of the embeddings the soft prompt joins)", field=attr)
        return width

    def delete(self, name: str) -> None:
        if name in self.prompts:
            del self.prompts[name]

    def modules_of(self, name: str) -> list:
        return [self.prompts[name]] if name in self.prompts else []

    def before_save(self, name: str) -> None:
        return None

    def expected_sites(self) -> dict:
        return {("prompt",): self.embeddings_path} if self._active() is not None else {}

    def _active(self):
        setup, _ = self.engine.current_setup()
        if setup is None:
            return None
        first = setup.first()
        return first if first in self.prompts else None

    def before_forward(self, args, kwargs, forward):
        name = self._active()
        if name is None:
            return None
        length = self.prompts[name].config.prompt_length
        forward.extras["prompt_tokens_length"] = length
        mask = kwargs.get("attention_mask")
        if mask is None and len(args) > 1 and isinstance(args[1], torch.Tensor):
            mask = args[1]
            args = (args[0], None) + tuple(args[2:])
        if mask is None:
            return None
        ones = torch.ones(mask.shape[0], length, dtype=mask.dtype, device=mask.device)
        kwargs = dict(kwargs, attention_mask=torch.cat([ones, mask], dim=1))
        forward.extras["attention_mask"] = kwargs["attention_mask"]
        return args, kwargs

    def _before_embeddings(self, module, args, kwargs):
        forward = ForwardContext.current()
        length = forward.extras.get("prompt_tokens_length") if forward is not None else None
        if not length or self._active() is None:
            return None
        name, index = self.mask_argument, self.mask_index
        positional = name not in kwargs and index < len(args)
        mask = args[index] if positional else kwargs.get(name)
        if mask is None:
            return None
        mask = mask[..., length:]
        if positional:
            return tuple(args[:index]) + (mask,) + tuple(args[index + 1:]), kwargs
        return args, dict(kwargs, **{name: mask})

    def _on_embeddings(self, module, args, output):
        name = self._active()
        forward = ForwardContext.current()
        if name is None or forward is None:
            return None
        note_ran(("prompt",))
        return self.prompts[name](output)


def _fix_layer_mask(module, args, kwargs):
    """A padding mask built for the un-prompted length (B, 1, S, S+P) becomes (B, 1, 1, S+P)."""
    positional = "attention_mask" not in kwargs and len(args) > 1
    mask = args[1] if positional else kwargs.get("attention_mask")
    hidden = args[0] if args else kwargs.get("hidden_states")
    if not isinstance(mask, torch.Tensor) or not isinstance(hidden, torch.Tensor) or mask.dim() != 4:
        return None
    if mask.shape[-2] in (1, hidden.shape[1]):
        return None
    if positional:
        return (args[0], mask[:, :, :1, :]) + tuple(args[2:]), kwargs
    return args, dict(kwargs, attention_mask=mask[:, :, :1, :])
