"""What the engine needs from the installed ``transformers``, checked where it attaches and where it runs.

Two promises (docs/engine-status.md, "Hooks that fail loudly"):

- when a method attaches, every module and forward argument it depends on is looked up in the installed
  ``transformers``; a missing one is a :class:`HookTargetMissing` naming the architecture, the module and
  the ``transformers`` version;
- in the first forward pass of each adapter setup, every site that setup concerns must report that it ran
  (a hooked module that is no longer called, or a cache argument that ``transformers`` drops, would
  otherwise leave the backbone's output in place); one that did not is a :class:`HookNotRun`.
"""

from __future__ import annotations

import inspect
from typing import Iterable, Optional

from .context import ForwardContext
from .errors import HookNotRun, HookTargetMissing

_AUDIT = "hook_audit"  # ForwardContext.extras key: the set of site keys that ran in this forward
_EXPECTED = "hook_audit_expected"  # site key -> module path, added while the forward runs


def transformers_version() -> str:
    try:
        import transformers
    except ImportError:  # pragma: no cover - transformers is a dependency
        return "not installed"
    return transformers.__version__


def target_missing(arch: Optional[str], module_path: str, what: str) -> HookTargetMissing:
    where = f"{arch} " if arch else ""
    version = transformers_version()
    return HookTargetMissing(
        f"{where}module {module_path or '<root>'!r}: {what} (transformers {version}); this version of "
        f"transformers is not supported for this adapter method", architecture=arch, module=module_path,
        transformers_version=version)


def forward_parameters(module) -> list:
    """Names of ``module.forward``'s parameters as the installed ``transformers`` declares them."""
    return list(inspect.signature(module.forward).parameters)


def pick_parameter(module, candidates: Iterable[str], arch: Optional[str], module_path: str, what: str) -> str:
    """The first of ``candidates`` that ``module.forward`` declares; HookTargetMissing when none is there."""
    candidates = tuple(candidates)
    params = forward_parameters(module)
    for name in candidates:
        if name in params:
            return name
    raise target_missing(arch, module_path, f"its forward takes none of {list(candidates)} for {what} "
                                            f"(it takes {params})")


def note_ran(key) -> None:
    """Called by a site when it has applied its adapter: ``key`` identifies the site (see ``audit_keys``)."""
    forward = ForwardContext.current()
    if forward is not None:
        ran = forward.extras.get(_AUDIT)
        if ran is not None:
            ran.add(key)


def note_expected(key, module_path: str) -> None:
    """A site that hands work to a later hook (``key``) which must then call ``note_ran(key)``."""
    forward = ForwardContext.current()
    if forward is not None and forward.extras.get(_AUDIT) is not None:
        forward.extras.setdefault(_EXPECTED, {})[key] = module_path


def start_audit(forward) -> None:
    forward.extras[_AUDIT] = set()
    forward.extras[_EXPECTED] = {}


def auditing(forward) -> bool:
    return forward is not None and forward.extras.get(_AUDIT) is not None


def finish_audit(forward, expected: dict, arch: str) -> None:
    """``expected``: site key -> module path. Raises HookNotRun naming every site that did not run."""
    ran = forward.extras.pop(_AUDIT, None)
    if ran is None:
        return
    expected = {**expected, **forward.extras.pop(_EXPECTED, {})}
    missing = [path for key, path in expected.items() if key not in ran]
    if missing:
        version = transformers_version()
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise HookNotRun(
            f"{arch}: the adapter did not run at {shown} in this forward pass (transformers {version}); "
            f"the installed transformers no longer calls what the engine hooks, so the output would be the "
            f"backbone's alone", architecture=arch, module=missing[0], modules=missing,
            transformers_version=version)
