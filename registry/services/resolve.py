"""Identifier resolution (CONTRACTS.md section 1): identifier + backbone + config + version -> files."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet

from adapters_client.errors import InvalidIdentifier
from adapters_client.identifiers import AdapterId
from adapters_client.rules import ErrorCodes, alias_target

from ..choices import VersionStatus
from ..errors import AdapterNotFoundError, AmbiguousIdentifierError, InvalidIdentifierError, NotFound, UserError
from ..models import Adapter, AdapterVersion
from ..querysets import default_version, visible_adapters

CONFIG_HASH = re.compile(r"[0-9a-f]{16}\Z")
MAX_SUGGESTIONS = 5


class VersionNotValid(UserError):
    code = "version_not_valid"
    status = 409


@dataclass
class Resolution:
    adapter: Adapter
    version: AdapterVersion
    warning: str = ""
    files: list = field(default_factory=list)


def parse_identifier(text: str) -> AdapterId:
    try:
        return AdapterId.parse(text)
    except InvalidIdentifier as exc:
        raise InvalidIdentifierError(exc.detail) from None


def _config_hash_of(name: str) -> str | None:
    """The hash of a method name or string config (``lora[r=16]``) when the config module knows it."""
    try:
        from adapters_client.configs import config_hash, load_config
    except ImportError:
        return None
    try:
        return config_hash(load_config(name))
    except Exception:  # noqa: BLE001 - an unknown name is matched by method only
        return None


def config_filter(config: str) -> Q:
    """``config`` is a 16-hex config hash, a method name or alias, or a string config with overrides."""
    config = config.strip()
    if CONFIG_HASH.match(config):
        return Q(config_hash=config)
    digest = _config_hash_of(config)
    by_hash = Q(config_hash=digest) if digest else Q(pk__in=[])
    if "[" in config:  # overrides: only the exact configuration will do
        return by_hash
    name = config.lower()
    return by_hash | Q(method__in={name, _canonical_method(name)})


def _canonical_method(name: str) -> str:
    """``pfeiffer`` -> ``seq_bn``: the one alias table, adapters_client.rules."""
    return alias_target(name)


def _describe(adapter: Adapter) -> dict:
    return {
        "id": adapter.pk, "identifier": adapter.identifier, "model_name": adapter.model_name,
        "method": adapter.method, "config_hash": adapter.config_hash, "is_default": adapter.is_default,
    }


def _not_found(ident: AdapterId, visible: QuerySet, same_name: QuerySet) -> AdapterNotFoundError:
    """404 with close identifiers, or the backbones/configs that exist when only the filters failed."""
    available = [_describe(a) for a in same_name.order_by("model_name", "method", "id")[:20]]
    if available:
        return AdapterNotFoundError(
            f"no adapter '{ident}' matches the requested backbone and configuration",
            suggestions=sorted({a["identifier"] for a in available}), available=available,
        )
    names = {
        f"{t}/{s}@{o}" for t, s, o in visible.values_list("task__slug", "subtask__slug", "organisation__slug")[:5000]
    }
    names |= {n.split("@")[0] for n in names}
    close = difflib.get_close_matches(str(ident), sorted(names), n=MAX_SUGGESTIONS, cutoff=0.6)
    return AdapterNotFoundError(f"no adapter '{ident}'", suggestions=close, available=[])


def pick_adapter(ident: AdapterId, visible: QuerySet, *, model_name: str = "", config: str = "") -> Adapter:
    """Steps 1-3 of CONTRACTS.md section 1 over the adapters the caller may see."""
    same_name = visible.filter(task__slug=ident.task, subtask__slug=ident.subtask)
    if ident.org:
        same_name = same_name.filter(organisation__slug=ident.org)
    candidates = same_name
    if model_name:
        candidates = candidates.filter(model_name=model_name)
    if config:
        candidates = candidates.filter(config_filter(config))
    found = list(candidates.order_by("id")[:50])
    if len(found) == 1:
        return found[0]
    if not found:
        raise _not_found(ident, visible, same_name)
    defaults = [a for a in found if a.is_default]
    if len(defaults) == 1:
        return defaults[0]
    raise AmbiguousIdentifierError(
        f"'{ident}' matches {len(found)} adapters; pass model_name and/or config to choose one",
        candidates=[_describe(a) for a in found],
    )


def pick_version(adapter: Adapter, version: str = "") -> tuple[AdapterVersion, str]:
    """The pinned version (a yanked one with a warning) or the adapter's default version."""
    if version:
        chosen = adapter.versions.filter(version=version).first()
        if chosen is None:
            raise NotFound(f"{adapter.identifier} has no version '{version}'", code=ErrorCodes.VERSION_NOT_FOUND)
        if chosen.status != VersionStatus.VALID:
            raise VersionNotValid(
                f"version '{version}' of {adapter.identifier} is {chosen.status}, not valid",
                status_of_version=chosen.status,
            )
        warning = ""
        if chosen.yanked:
            reason = f": {chosen.yank_reason}" if chosen.yank_reason else ""
            warning = f"version '{version}' of {adapter.identifier} has been yanked{reason}"
        return chosen, warning
    chosen = default_version(adapter)
    if chosen is None:
        raise NotFound(f"{adapter.identifier} has no valid, non-yanked version yet", code=ErrorCodes.NO_VALID_VERSION)
    return chosen, ""


def resolve(
    text: str, *, user=None, auth=None, model_name: str = "", config: str = "", version: str = ""
) -> Resolution:
    """Resolve an identifier for ``user``: invisible adapters behave as if they did not exist."""
    ident = parse_identifier(text)
    adapter = pick_adapter(ident, visible_adapters(user, auth), model_name=model_name, config=config)
    adapter = Adapter.objects.select_related("task", "subtask", "organisation", "default_version").get(pk=adapter.pk)
    chosen, warning = pick_version(adapter, version)
    return Resolution(adapter=adapter, version=chosen, warning=warning, files=list(chosen.files.order_by("name")))
