"""Weight files: collecting an adapter's tensors, writing/reading safetensors, strict key and shape checks."""

from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

from .errors import IncompatibleAdapter


class TensorGroup:
    """All state-dict keys (relative to the base model) that share one tensor; ``keys[0]`` is written."""

    def __init__(self, keys: list, tensor: torch.Tensor):
        self.keys = sorted(keys, key=lambda k: (len(k), k))
        self.tensor = tensor


def _matches(key: str, name: str, segments) -> bool:
    for segment in segments:
        marker = f"{segment}.{name}."
        if key.startswith(marker) or f".{marker}" in key:
            return True
    return False


def expected_groups(engine, name: str, segments) -> list:
    """The tensors of adapter (or fusion) ``name`` grouped by identity, keys relative to the base model."""
    by_id: dict = {}
    for key, tensor in engine.base_model.state_dict(keep_vars=True).items():
        if _matches(key, name, segments):
            by_id.setdefault(id(tensor), (tensor, []))[1].append(key)
    return [TensorGroup(keys, tensor) for tensor, keys in by_id.values()]


def write_weights(path: Path, groups: list, base_prefix: str) -> None:
    """Write one safetensors file with each shared tensor once, under library-style full keys."""
    from safetensors.torch import save_file

    tensors = {f"{base_prefix}.{g.keys[0]}": g.tensor.detach().to("cpu").contiguous().clone() for g in groups}
    save_file(tensors, str(path), metadata={"format": "pt"})
    usual_permissions(path)


def _process_umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


_UMASK = _process_umask()  # read once at import: os.umask is process-wide, not thread-safe to probe


def usual_permissions(path) -> None:
    """safetensors creates its files 0600; give them the permissions of any other file (0666 less umask)."""
    os.chmod(path, 0o666 & ~_UMASK)


def read_weights(folder: Path, safe_name: str, pickle_name: str, allow_pickle: bool) -> dict:
    """The state dict stored in ``folder``; pickled weights only with ``allow_pickle`` (weights_only)."""
    safe = folder / safe_name
    if safe.exists():
        from safetensors.torch import load_file

        try:
            return load_file(str(safe), device="cpu")
        except Exception as exc:
            raise IncompatibleAdapter(
                f"{safe_name} is damaged or not a safetensors file ({type(exc).__name__}: {exc})", field=safe_name
            ) from None
    pickled = folder / pickle_name
    if pickled.exists():
        if not allow_pickle:
            raise IncompatibleAdapter(
                f"only pickled weights ({pickle_name}) found; pass allow_pickle=True to load them "
                "(they are read with torch.load(weights_only=True))", field=pickle_name)
        try:
            state = torch.load(str(pickled), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise IncompatibleAdapter(f"{pickle_name} cannot be read: {exc}", field=pickle_name) from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise IncompatibleAdapter(f"{pickle_name} does not hold a dict of tensors", field=pickle_name)
        return state
    raise IncompatibleAdapter(f"no weights file ({safe_name}) in {folder}", field=safe_name)


def rename_keys(state: dict, old: str, new: str, segments) -> dict:
    """Rename adapter ``old`` to ``new`` in every key (``load_as``)."""
    if old == new:
        return dict(state)
    renamed = {}
    for key, value in state.items():
        for segment in segments:
            key = key.replace(f".{segment}.{old}.", f".{segment}.{new}.")
            if key.startswith(f"{segment}.{old}."):
                key = f"{segment}.{new}." + key[len(f"{segment}.{old}."):]
        renamed[key] = value
    return renamed


def all_finite(tensor: torch.Tensor) -> bool:
    """No NaN or infinity in ``tensor``. A finite sum proves it (NaN and infinities propagate through a
    sum) at a fraction of the cost of ``isfinite(t).all()``; a non-finite sum (which also happens when
    large finite values overflow) is settled element by element."""
    if tensor.numel() == 0:
        return True
    if bool(torch.isfinite(tensor.sum())):
        return True
    return bool(torch.isfinite(tensor).all())


_OVERWRITTEN: ContextVar = ContextVar("adapters_client_init_overwritten", default=False)


class _SkipRandomInit(TorchFunctionMode):
    """Random initialisation becomes a no-op (the tensors keep whatever ``torch.empty`` gave them)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _RANDOM_INIT:
            return args[0] if args else (kwargs or {}).get("tensor")
        return func(*args, **(kwargs or {}))


_RANDOM_INIT = frozenset({
    torch.Tensor.normal_, torch.Tensor.uniform_, torch.nn.init.normal_, torch.nn.init.uniform_,
    torch.nn.init.trunc_normal_, torch.nn.init.kaiming_uniform_, torch.nn.init.kaiming_normal_,
    torch.nn.init.xavier_uniform_, torch.nn.init.xavier_normal_,
})


@contextmanager
def overwritten_init():
    """For modules whose every tensor is about to be overwritten by a checkpoint: their random
    initialisation is skipped (most of the time ``add_adapter`` takes on large adapters).

    Only around code that is followed by ``match_state_dict``, which refuses a checkpoint missing
    any of the adapter's tensors, so no uninitialised value survives. It does not draw from the
    global random generator either. A torch-function mode is local to the thread that enters it,
    so other threads building modules at the same time initialise them as usual."""
    token = _OVERWRITTEN.set(True)
    try:
        with _SkipRandomInit():
            yield
    finally:
        _OVERWRITTEN.reset(token)


def _relative_key(key: str, prefixes: list) -> str:
    for prefix in prefixes:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def init_overwritten() -> bool:
    """True inside ``overwritten_init``: an initialisation that needs outside resources (a tokenizer) can be
    skipped, the checkpoint replaces it."""
    return _OVERWRITTEN.get()


def match_state_dict(state: dict, groups: list, base_prefix) -> None:
    """Copy ``state`` into the groups' tensors; IncompatibleAdapter naming the first bad key.

    ``base_prefix``: the base model's attribute that keys may start with, or several (the first one names keys in
    messages); keys without one are read as relative to the base model."""
    prefixes = [p + "." for p in ((base_prefix,) if isinstance(base_prefix, str) else base_prefix)]
    prefix = prefixes[0]
    relative = {_relative_key(k, prefixes): v for k, v in state.items()}
    owner = {key: group for group in groups for key in group.keys}
    unexpected = sorted(k for k in relative if k not in owner)
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise IncompatibleAdapter(f"unexpected weight {prefix}{unexpected[0]}{more}: not part of this adapter "
                                  "on this model", field="weights", key=prefix + unexpected[0])
    for group in groups:
        present = [k for k in group.keys if k in relative]
        if not present:
            raise IncompatibleAdapter(f"missing weight {prefix}{group.keys[0]}", field="weights",
                                      key=prefix + group.keys[0])
        for key in present:
            value = relative[key]
            if tuple(value.shape) != tuple(group.tensor.shape):
                raise IncompatibleAdapter(
                    f"weight {prefix}{key} has shape {tuple(value.shape)}, expected {tuple(group.tensor.shape)}",
                    field="weights", key=prefix + key)
            if value.is_floating_point() and not all_finite(value):
                raise IncompatibleAdapter(f"weight {prefix}{key} holds NaN or infinite values", field="weights",
                                          key=prefix + key)
    with torch.no_grad():
        for group in groups:
            key = next(k for k in group.keys if k in relative)
            group.tensor.copy_(relative[key].to(dtype=group.tensor.dtype, device=group.tensor.device))
