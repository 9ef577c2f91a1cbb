"""The checks that run the adapter: loading it with ``adapters_client``, a forward pass on the probe batch,
and the head's output against its config. ``cleanup`` leaves the cached backbone as it was.
"""

from __future__ import annotations

import torch

from .errors import ForwardFailed, LoadFailed, PlatformFault
from .loading import run_probe
from .static_checks import HEAD_CONFIG, Context

# The adapter's output must differ from the backbone's by more than this (relative to the output's scale).
NO_EFFECT_TOLERANCE = 1e-6
# Head types whose output shape on the probe batch is checked: output name -> shape rule.
_SEQUENCE, _TOKENS = "sequence", "tokens"
_HEAD_OUTPUTS = {
    "classification": (("logits", _SEQUENCE),),
    "multilabel_classification": (("logits", _SEQUENCE),),
    "tagging": (("logits", _TOKENS),),
    "question_answering": (("start_logits", None), ("end_logits", None)),
}


def check_load(ctx: Context) -> list:
    """Load the folder onto the backbone exactly as a user would (``load_adapter``, with its head)."""
    model = ctx.backbone.model
    ctx.outputs["label_maps"] = label_maps(model)
    try:
        ctx.adapter_name = model.load_adapter(str(ctx.folder), with_head=False, set_active=True)
        if HEAD_CONFIG in ctx.paths:
            ctx.head_name = model.load_head(str(ctx.folder))
    except Exception as exc:  # noqa: BLE001 - whatever the loader refuses is the adapter's fault
        raise LoadFailed(f"adapters_client could not load the adapter: {type(exc).__name__}: {exc}",
                         **_client_facts(exc)) from None
    return []


def label_maps(model) -> tuple:
    """The backbone config's label maps, which activating a head overwrites."""
    return getattr(model.config, "label2id", None), getattr(model.config, "id2label", None)


def _client_facts(exc) -> dict:
    details = getattr(exc, "details", None) or {}
    return {k: v for k, v in details.items() if k in ("key", "field", "expected", "found") and v is not None}


def _tensors(output) -> dict:
    if output is None:
        return {}
    items = output.items() if hasattr(output, "items") else enumerate(output)
    return {str(k): v for k, v in items if isinstance(v, torch.Tensor) and k not in ("hidden_states", "attentions")}


def check_forward(ctx: Context) -> list:
    """A forward pass on the probe batch: finite outputs that differ from the backbone's own."""
    backbone = ctx.backbone
    try:
        hidden, head_output = run_probe(backbone.model, backbone.probe)
    except torch.OutOfMemoryError as exc:
        raise PlatformFault(f"out of memory during the forward pass: {exc}", code="out_of_memory") from None
    except Exception as exc:  # noqa: BLE001 - a forward the adapter breaks is the adapter's fault
        raise ForwardFailed(f"the forward pass failed: {type(exc).__name__}: {exc}") from None
    ctx.outputs.update(hidden=hidden, head=head_output)
    problems = []
    outputs = {"last_hidden_state": hidden, **_tensors(head_output)}
    for name, tensor in outputs.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            problems.append({"code": "non_finite_output", "key": name,
                             "detail": f"{bad} of {tensor.numel()} values are NaN or infinite"})
    if not problems:
        problems += _no_effect(hidden, backbone.baseline, ctx)
    return problems


def _no_effect(hidden: torch.Tensor, baseline: torch.Tensor, ctx: Context) -> list:
    if hidden.shape != baseline.shape:
        ctx.outputs["max_abs_change"] = None
        return []
    change = float((hidden.float() - baseline.float()).abs().max())
    scale = float(baseline.float().abs().max())
    ctx.outputs["max_abs_change"] = change
    if change <= NO_EFFECT_TOLERANCE * max(1.0, scale):
        return [{"code": "no_effect", "detail": f"the adapter changes the backbone's output by at most {change:.3g}: "
                                                "it has no effect"}]
    return []


def check_head(ctx: Context) -> list:
    """The head's output shape on the probe batch and its labels against head_config.json."""
    config = dict(ctx.backbone.model.heads[ctx.head_name].config)  # the head as built: defaults filled in
    config["label2id"] = ctx.head_doc["config"].get("label2id")  # the labels as the file declares them
    head_type = config.get("head_type")
    num_labels = config.get("num_labels")
    hidden, output = ctx.outputs["hidden"], _tensors(ctx.outputs.get("head"))
    batch, tokens = hidden.shape[0], hidden.shape[1]
    problems = []
    rules = _HEAD_OUTPUTS.get(head_type)
    if rules is None:
        ctx.outputs["head_note"] = f"output shape not checked for head type {head_type!r}"
        rules = ()
    expected_shapes = {_SEQUENCE: [batch, num_labels], _TOKENS: [batch, tokens, num_labels], None: [batch, tokens]}
    for name, rule in rules:
        want = expected_shapes[rule]
        got = list(output[name].shape) if name in output else None
        if got != want:
            problems.append({"code": "head_shape", "key": name, "expected": want, "got": got})
    if head_type == "question_answering" and num_labels not in (None, 2):
        problems.append({"code": "head_shape", "key": "num_labels", "expected": 2, "got": num_labels})
    problems += _label_problems(config, num_labels)
    return problems


def _label_problems(config: dict, num_labels) -> list:
    label2id = config.get("label2id")
    if not label2id or num_labels is None or num_labels == 1:
        return []
    ids = sorted(label2id.values()) if all(type(v) is int for v in label2id.values()) else None
    if ids != list(range(num_labels)):
        return [{"code": "head_shape", "key": "label2id", "expected": list(range(num_labels)), "got": ids,
                 "detail": f"label2id must name each of the head's {num_labels} outputs once"}]
    return []


def cleanup(ctx: Context) -> None:
    """Remove what this validation added to the cached backbone (adapter, head, label maps)."""
    if ctx.backbone is not None:
        restore(ctx.backbone.model, ctx.head_name, ctx.outputs.get("label_maps"))
    ctx.outputs.clear()


def restore(model, head_name, label_maps) -> None:
    """Leave ``model`` without adapters, fusions or head ``head_name``, with its config's label maps as before."""
    if head_name and head_name in model.heads:
        model.delete_head(head_name)
    engine = model.adapter_engine
    for name in list(engine.fusions):
        engine.delete_fusion(name)
    for name in list(engine.configs):
        engine.delete(name)
    engine.set_active(None)
    if label_maps is not None:
        model.config.label2id, model.config.id2label = label_maps
