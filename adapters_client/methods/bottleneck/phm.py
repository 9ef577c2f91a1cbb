"""PHM layers (Compacter): a Linear whose weight is a sum of Kronecker products.

The weight of a PHM layer with ``n = phm_dim`` is ``H = sum_k  A_k (x) W_k``: ``A`` (the "rule", n x n x n) and
``W`` (n x in/n x out/n, optionally the product of a rank-``phm_rank`` left and right factor). ``A`` may be one
tensor per adapter shared by every PHM layer of that adapter (``shared_phm_rule``), kept at model level under
``<base>.shared_parameters.<adapter>.`` (the adapters library's keys); so may ``W`` (``shared_W_phm``).
Parameter names follow the adapters library: ``phm_rule`` / ``phm_rule_left`` / ``phm_rule_right``, ``W`` /
``W_left`` / ``W_right``, ``b``; shared: ``W_down_left`` ... ``W_up_right``.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ...errors import HookNotRun, InvalidAdapterConfig

HYPERCOMPLEX_NONLINEARITIES = ("phm", "glorot-normal", "glorot-uniform", "normal")


def check_phm_config(config, hidden: int, down: int) -> None:
    """InvalidAdapterConfig for a PHM option this engine (or the adapters library) cannot build."""
    if config.hypercomplex_nonlinearity not in HYPERCOMPLEX_NONLINEARITIES:
        raise InvalidAdapterConfig(
            f"hypercomplex_nonlinearity must be one of {list(HYPERCOMPLEX_NONLINEARITIES)}, got "
            f"{config.hypercomplex_nonlinearity!r}", field="hypercomplex_nonlinearity")
    if config.init_weights != "bert":
        # the library's mam_adapter/houlsby initialisers read ``.weight`` of the down/up layers: PHM has none
        raise InvalidAdapterConfig(f"phm_layer needs init_weights='bert' (got {config.init_weights!r})",
                                   field="init_weights")
    if config.shared_W_phm and not config.factorized_phm_W:
        raise InvalidAdapterConfig("shared_W_phm is only supported with factorized_phm_W=True (the adapters "
                                   "library cannot build the unfactorised shared weights)", field="shared_W_phm")
    if config.shared_W_phm and not isinstance(config.reduction_factor, (int, float)):
        raise InvalidAdapterConfig("shared_W_phm needs one reduction_factor for every layer (not a mapping)",
                                   field="reduction_factor")
    for what, size in (("hidden size", hidden), ("bottleneck size", down)):
        if size % config.phm_dim:
            raise InvalidAdapterConfig(f"the {what} {size} is not divisible by phm_dim={config.phm_dim}",
                                       field="phm_dim")


def phm_weight(rule: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum_k kron(rule[k], weight[k])``: (n, a, b) and (n, p, q) -> (a*p, b*q)."""
    n, a, b = rule.shape
    _, p, q = weight.shape
    return torch.einsum("kab,kpq->apbq", rule, weight).reshape(a * p, b * q)


def _init_w(config, tensor: torch.Tensor) -> None:
    """Initialise each of the ``phm_dim`` slices of a W factor.

    The adapters library 1.3.0 tests ``hypercomplex_nonlinearity`` for truth before comparing its value, so every
    accepted value gives Xavier-normal slices; this reproduces that.
    """
    with torch.no_grad():
        for index in range(tensor.shape[0]):
            nn.init.xavier_normal_(tensor[index])


def _init_rule(tensor: torch.Tensor, c_init: str, std: float, bound: float) -> None:
    with torch.no_grad():
        if c_init == "uniform":
            tensor.uniform_(-bound, bound)
        else:
            tensor.normal_(mean=0.0, std=std)


def shared_phm_parameters(config, hidden: int) -> nn.ParameterDict:
    """The adapter-wide PHM parameters (``shared_phm_rule`` and/or ``shared_W_phm``); empty when none is shared."""
    params = nn.ParameterDict()
    n, rank = config.phm_dim, config.phm_rank
    if config.shared_W_phm:  # factorised only (check_phm_config)
        down = int(hidden // config.reduction_factor)
        shapes = {"W_down_left": (n, hidden // n, rank), "W_down_right": (n, rank, down // n),
                  "W_up_left": (n, down // n, rank), "W_up_right": (n, rank, hidden // n)}
        for key, shape in shapes.items():
            tensor = torch.empty(shape)
            _init_w(config, tensor)
            params[key] = nn.Parameter(tensor)
    if config.shared_phm_rule:
        # the library initialises shared rules with std=phm_init_range (normal) or in [-1, 1] (uniform)
        shapes = {"phm_rule_left": (n, n, 1), "phm_rule_right": (n, 1, n)} if config.factorized_phm_rule \
            else {"phm_rule": (n, n, n)}
        for key, shape in shapes.items():
            tensor = torch.empty(shape)
            _init_rule(tensor, config.phm_c_init, config.phm_init_range, 1.0)
            params[key] = nn.Parameter(tensor, requires_grad=bool(config.learn_phm))
    return params


class PHMLayer(nn.Module):
    """``y = x @ H + b`` with ``H`` built from the PHM rule and W (own or shared) at every call."""

    def __init__(self, name: str, in_features: int, out_features: int, position: str, config):
        super().__init__()
        n = config.phm_dim
        self.name = name
        self.position = position  # "down" or "up": which shared W it reads
        self.in_features, self.out_features = in_features, out_features
        self.shared_rule = bool(config.shared_phm_rule)
        self.shared_w = bool(config.shared_W_phm)
        self.factorized_rule = bool(config.factorized_phm_rule)
        self.factorized_w = bool(config.factorized_phm_W)
        self._shared: Optional[nn.ParameterDict] = None  # bound by the engine (not a submodule: saved at model level)
        if config.init_weights_seed is not None:
            torch.manual_seed(config.init_weights_seed)
        if not self.shared_w:
            if self.factorized_w:
                self.W_left = nn.Parameter(torch.empty(n, in_features // n, config.phm_rank))
                self.W_right = nn.Parameter(torch.empty(n, config.phm_rank, out_features // n))
                _init_w(config, self.W_left)
                _init_w(config, self.W_right)
            else:
                self.W = nn.Parameter(torch.empty(n, in_features // n, out_features // n))
                _init_w(config, self.W)
        if not self.shared_rule:
            learn = bool(config.learn_phm)
            shapes = {"phm_rule_left": (n, n, 1), "phm_rule_right": (n, 1, n)} if self.factorized_rule \
                else {"phm_rule": (n, n, n)}
            for key, shape in shapes.items():
                tensor = torch.empty(shape)
                _init_rule(tensor, config.phm_c_init, 0.01, 0.01)  # the library's per-layer rule init
                setattr(self, key, nn.Parameter(tensor, requires_grad=learn))
        if config.phm_bias:
            self.b = nn.Parameter(torch.zeros(out_features))
        else:
            self.register_parameter("b", None)

    @property
    def needs_shared(self) -> bool:
        return self.shared_rule or self.shared_w

    def bind_shared(self, params: nn.ParameterDict) -> None:
        """Use ``params`` (the adapter's model-level ``shared_parameters`` entry) for the shared rule / W."""
        self.__dict__["_shared"] = params

    def _shared_params(self) -> nn.ParameterDict:
        shared = self.__dict__.get("_shared")
        if shared is None:
            raise HookNotRun(f"PHM layer of adapter {self.name!r} has no shared parameters bound (the engine adds "
                             f"them with the adapter)", module=f"shared_parameters.{self.name}")
        return shared

    def weight(self) -> torch.Tensor:
        """The (in_features, out_features) matrix this layer multiplies by."""
        shared = self._shared_params() if self.needs_shared else None
        if self.shared_w:
            w = torch.bmm(shared[f"W_{self.position}_left"], shared[f"W_{self.position}_right"])
        elif self.factorized_w:
            w = torch.bmm(self.W_left, self.W_right)
        else:
            w = self.W
        source = shared if self.shared_rule else None
        if self.factorized_rule:
            left = source["phm_rule_left"] if source is not None else self.phm_rule_left
            right = source["phm_rule_right"] if source is not None else self.phm_rule_right
            rule = torch.bmm(left, right)
        else:
            rule = source["phm_rule"] if source is not None else self.phm_rule
        return phm_weight(rule, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.matmul(x, self.weight().to(x.dtype))
        return y + self.b if self.b is not None else y

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, position={self.position}"
