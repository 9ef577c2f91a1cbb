"""MTL-LoRA (Yang et al., 2024; ``MTLLoRAConfig``, architecture ``"mtl_lora"``) with the adapters library's names.

The update of one projection: ``x A^T diag(task_specific.values)``, projected up by each of the ``n_up_projection``
matrices ``lora_B[k]`` (``lora_B``: (n_up, out, r)), mixed with ``softmax(weights / weights_sharpness)`` and scaled by
``alpha / r`` (or the gate). The library computes the mix as ``exp(w / s) / sum(exp(w / s))``; the softmax is the
same value without its overflow for large weights.

Several MTL-LoRA adapters (one per task) usually share A and the up-projections (``share_parameters``): each
projection then keeps the shared pair once under ``<projection>.shared_parameters.<share name>.lora_A/B`` (the
library's keys) and every member's module holds those same tensors. A ``MultiTask`` block routes each row of the
batch to the child its ``task_ids`` entry names (``compose_multi_task``): rows are grouped by task, run as a
``BatchSplit`` and put back in their order.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ...composition import BatchSplit, MultiTask
from ...configs import LoRAConfig
from ...context import TaskIds
from ...errors import InvalidAdapterConfig, InvalidComposition
from .modules import _Additive, _init_pair, add_gate


class TaskSpecificSingularValue(nn.Module):
    """The task's r x r transform between A and the up-projections: ``diag(values)``, values starting at one."""

    def __init__(self, rank: int):
        super().__init__()
        self.values = nn.Parameter(torch.ones(rank))

    def forward(self) -> torch.Tensor:
        return torch.diag(self.values)


def check_mtl_arch(engine) -> None:
    """adapters 1.3.0 reaches the ``library_interface`` rows (Qwen2, ModernBERT) only through its plugin interface,
    whose methods do not include ``mtl_lora`` (``add_adapter`` refuses the config there)."""
    if engine.spec.library_interface:
        raise InvalidAdapterConfig(f"MTL-LoRA is not supported on {engine.spec.model_type} (the adapters library's "
                                   "plugin interface, its only route to this model type, refuses it too)",
                                   field="architecture")


def check_mtl_config(config: LoRAConfig) -> None:
    """What adapters 1.3.0 cannot build either, refused before anything is added."""
    if config.task_specific_matrix_type != "singular_values":
        # the library's TaskSpecificLinear never calls Module.__init__: adding it fails with an AttributeError
        raise InvalidAdapterConfig("MTL-LoRA with task_specific_matrix_type='linear' is not supported: the adapters "
                                   "library fails to build it too (use 'singular_values')",
                                   field="task_specific_matrix_type")
    if config.use_dora:
        raise InvalidAdapterConfig("MTL-LoRA does not combine with DoRA (the adapters library fails to build it)",
                                   field="use_dora")


class MTLLoRA(_Additive):
    """One MTL-LoRA adapter at one projection (parameters ``lora_A``, ``lora_B``, ``task_specific.values``,
    ``weights``, optionally ``gate``), initialised in the library's order so that seeded adapters agree."""

    def __init__(self, in_features: int, out_features: int, config: LoRAConfig):
        super().__init__()
        check_mtl_config(config)
        self._setup_common(config, out_features, None)
        self.lora_A = nn.Parameter(torch.zeros(config.r, in_features))
        if config.init_weights_seed:  # the library reseeds only for a truthy seed
            torch.manual_seed(config.init_weights_seed)
        # the library first initialises a plain (out, r) B, then replaces it: its draws (bert, vera) are consumed
        _init_pair(self.lora_A, torch.zeros(out_features, config.r), config.init_weights)
        add_gate(self, in_features, config)
        self.lora_B = nn.Parameter(torch.zeros(config.n_up_projection, out_features, config.r))
        if config.init_weights == "bert":  # "lora" keeps zeros; so do "ia3" and "vera" in the library
            with torch.no_grad():
                nn.init.normal_(self.lora_B, std=0.02)
        self.task_specific = TaskSpecificSingularValue(config.r)
        self.weights = nn.Parameter(torch.ones(config.n_up_projection))
        self.weights_sharpness = config.weights_sharpness

    @property
    def delta_w(self) -> torch.Tensor:
        raise InvalidAdapterConfig("MTL-LoRA cannot be merged into the weight (the adapters library's merge gives a "
                                   "weight of the wrong shape)", field="architecture")

    def mixing(self) -> torch.Tensor:
        """The weight of each up-projection: softmax(weights / weights_sharpness)."""
        return torch.softmax(self.weights / self.weights_sharpness, dim=0)

    def forward(self, hidden, layer_input):
        x = layer_input if hidden is None else hidden
        down = self.dropout(x) @ self.lora_A.t() @ self.task_specific()
        n, out, r = self.lora_B.shape
        ups = down @ self.lora_B.transpose(-1, -2).reshape(n, *([1] * (down.dim() - 2)), r, out)
        mixed = (self.mixing().to(ups.dtype).view(n, *([1] * down.dim())) * ups).sum(dim=0)
        return self._scaled(mixed, layer_input)


# --- MultiTask routing -------------------------------------------------------------------------------------
def task_plan(block: MultiTask, batch: int, device) -> tuple:
    """(order, batch_sizes, inverse) of this forward's ``task_ids`` for ``block``: the rows sorted by task (stable),
    how many rows each child gets, and the permutation that puts them back. Typed errors where the library asserts
    (no task_ids) or fails later (unknown names, ids out of range, a length other than the batch's)."""
    current = TaskIds.current()
    if current is None or current.task_ids is None:
        raise InvalidComposition(f"{block!r} routes rows by task: pass task_ids=... (one child index or adapter name "
                                 "per row) to the forward call", field="task_ids")
    key = (id(block), batch, str(device))
    found = current.memo.get(key)
    if found is not None and found[0] is block:
        return found[1]
    ids = _task_indices(block, current.task_ids)
    if ids.dim() != 1 or ids.numel() != batch:
        raise InvalidComposition(f"task_ids has {ids.numel()} entries (shape {tuple(ids.shape)}) but the batch has "
                                 f"{batch} rows", field="task_ids")
    if batch and (int(ids.min()) < 0 or int(ids.max()) >= len(block)):
        raise InvalidComposition(f"task_ids must lie in [0, {len(block)}) for {block!r}, got {ids.tolist()}",
                                 field="task_ids")
    ids = ids.to(device)
    order = torch.argsort(ids, stable=True)
    sizes = torch.bincount(ids, minlength=len(block)).tolist()
    plan = (order, sizes, torch.argsort(order))
    current.memo[key] = (block, plan)
    return plan


def _task_indices(block: MultiTask, task_ids) -> torch.Tensor:
    if isinstance(task_ids, torch.Tensor):
        if task_ids.is_floating_point() or task_ids.is_complex() or task_ids.dtype == torch.bool:
            raise InvalidComposition(f"task_ids must hold integers, got {task_ids.dtype}", field="task_ids")
        return task_ids.long()
    if isinstance(task_ids, (list, tuple)) and task_ids and all(isinstance(t, str) for t in task_ids):
        children = list(block.children)
        unknown = sorted({t for t in task_ids if t not in children})
        if unknown:
            raise InvalidComposition(f"task_ids names {unknown[0]!r}, which is not a child of {block!r}",
                                     field="task_ids")
        return torch.tensor([children.index(t) for t in task_ids], dtype=torch.long)
    if isinstance(task_ids, (list, tuple)) and all(isinstance(t, int) and not isinstance(t, bool) for t in task_ids):
        return torch.tensor(list(task_ids), dtype=torch.long)
    raise InvalidComposition("task_ids must be a tensor of child indices or a list of child indices or adapter "
                             f"names (one per row), got {task_ids!r}", field="task_ids")


def compose_multi_task(site, block: MultiTask, state, lvl: int):
    """``block`` at a per-layer ``site``: the rows grouped by task, each group through its child (a BatchSplit over
    the children), then put back in the batch's order."""
    batch = site.batch_size(state)
    order, sizes, inverse = task_plan(block, batch, state.layer_input.device)

    def permute(index):
        return lambda t: t.index_select(0, index) if t.dim() and t.shape[0] == batch else t

    grouped = site.map_state(state, permute(order))
    result = site.compose_batch_split(BatchSplit(*block.children, batch_sizes=sizes), grouped, lvl)
    return site.map_state(result, permute(inverse))


# --- share_parameters --------------------------------------------------------------------------------------
def _store(site, create: bool) -> Optional[nn.ModuleDict]:
    store = getattr(site.module, "shared_parameters", None)
    if store is None and create:
        store = nn.ModuleDict()
        site.module.add_module("shared_parameters", store)
    return store


def share_at(site, name: str, adapter_names: list, reference: str) -> bool:
    """Give every adapter of ``adapter_names`` one copy of ``reference``'s A and B at this projection, kept under
    ``shared_parameters.<name>`` (as the library; nothing happens where one of them is missing). False: nothing
    done here."""
    if not all(n in site.adapters for n in adapter_names):
        return False
    _check_shapes(site, adapter_names, reference)
    source = site.adapters[reference]
    shared = nn.ParameterDict({key: nn.Parameter(getattr(source, key).detach().clone(),
                                                 requires_grad=getattr(source, key).requires_grad)
                               for key in ("lora_A", "lora_B")})
    _store(site, create=True)[name] = shared
    for other in adapter_names:
        for key in ("lora_A", "lora_B"):
            setattr(site.adapters[other], key, shared[key])
    site.__dict__.setdefault("share_members", {})[name] = list(adapter_names)
    return True


def unshare_at(site, name: str) -> None:
    """End share ``name`` here: its entry goes and each member gets its own copy of the (equal) A and B."""
    store = _store(site, create=False)
    if store is None or name not in store:
        return
    for member in site.__dict__.get("share_members", {}).pop(name, []):
        module = site.adapters[member] if member in site.adapters else None
        if module is None:
            continue
        for key in ("lora_A", "lora_B"):
            value = getattr(module, key)
            setattr(module, key, nn.Parameter(value.detach().clone(), requires_grad=value.requires_grad))
    del store[name]


def forget_adapter(site, name: str) -> None:
    """Adapter ``name`` leaves this projection: drop it from its shares; a share left without members, or one named
    like it (its keys would be saved with a later adapter of that name), goes."""
    store = _store(site, create=False)
    if store is None:
        return
    members = site.__dict__.get("share_members", {})
    for share in list(members):
        if name in members[share]:
            members[share] = [m for m in members[share] if m != name]
        if share == name or not members[share]:
            members.pop(share)
            if share in store:
                del store[share]


def share_parameters(engine, adapter_names, name: Optional[str] = None, reference: Optional[str] = None) -> str:
    """``model.share_parameters``: the MTL-LoRA adapters ``adapter_names`` (a MultiTask block, a list or a
    comma-separated string) share ``reference``'s (default: the first one's) A and B at every projection they all
    adapt, under ``shared_parameters.<name>`` (default: the names joined by commas). Returns the share's name."""
    names = _share_names(adapter_names)
    if not names:
        raise InvalidAdapterConfig("share_parameters needs at least one adapter name", field="adapter_names")
    name = name or ",".join(names)
    reference = reference or names[0]
    if reference not in names:
        raise InvalidAdapterConfig(f"reference adapter {reference!r} is not one of {names}",
                                   field="reference_adapter_name")
    from ...configs import MTLLoRAConfig
    from ...errors import AdapterNameNotFound

    for adapter in names:
        config = engine.configs.get(adapter)
        if config is None:
            raise AdapterNameNotFound(f"no adapter named {adapter!r}", field="adapter_names")
        if not isinstance(config, MTLLoRAConfig):
            raise InvalidAdapterConfig(f"share_parameters needs multi-task (MTL-LoRA) adapters; {adapter!r} is a "
                                       f"{type(config).__name__}", field="adapter_names")
    for site in engine.lora_layers:  # checked at every site before any changes
        if all(n in site.adapters for n in names):
            _check_shapes(site, names, reference)
    for site in engine.lora_layers:
        site.share(name, names, reference)
    engine._generation += 1  # the modules' parameters changed: setups are audited again
    return name


def unshare_parameters(engine, adapter_names, name: Optional[str] = None) -> None:
    """``model.unshare_parameters``: share ``name`` (default: the names joined by commas) ends at every projection."""
    names = _share_names(adapter_names)
    name = name or ",".join(names)
    for site in engine.lora_layers:
        site.unshare(name)


def shares_of(engine) -> dict:
    """Share name -> its member adapters (the largest membership any projection holds), for ``save_pretrained``."""
    shares: dict = {}
    for site in engine.lora_layers:
        for share, members in site.__dict__.get("share_members", {}).items():
            if len(members) > len(shares.get(share, ())):
                shares[share] = list(members)
    return shares


def _share_names(adapter_names) -> list:
    if isinstance(adapter_names, MultiTask):
        names = list(adapter_names.children)
    elif isinstance(adapter_names, str):
        names = adapter_names.split(",")
    else:
        names = list(adapter_names or [])
    if not all(isinstance(n, str) for n in names):
        raise InvalidAdapterConfig(f"share_parameters takes adapter names, got {names!r}", field="adapter_names")
    return names


def _check_shapes(site, names: list, reference: str) -> None:
    source = site.adapters[reference]
    for other in names:
        module = site.adapters[other]
        if module.lora_A.shape != source.lora_A.shape or module.lora_B.shape != source.lora_B.shape:
            raise InvalidAdapterConfig(
                f"{other!r} and {reference!r} cannot share A and B at {site.path}: shapes "
                f"{tuple(module.lora_A.shape)}/{tuple(module.lora_B.shape)} and {tuple(source.lora_A.shape)}/"
                f"{tuple(source.lora_B.shape)} (r and n_up_projection must agree)", field="r")
