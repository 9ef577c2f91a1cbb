"""One copy of each shared rule (ARCHITECTURE.md rule 2): the hub and the client agree.

Remote-code keys, method aliases, the identifier grammar and the wire error codes live in
adapters_client.rules; these tests check that both sides use that copy and behave the same.
"""

from __future__ import annotations

import json

import pytest

from adapters_client import rules
from adapters_client.configs import ALIASES, canonical_name, load_config
from adapters_client.errors import InvalidAdapterConfig, InvalidIdentifier
from adapters_client.hub_api import _ERRORS_BY_CODE
from adapters_client.identifiers import AdapterId, is_slug
from registry import errors as hub_errors
from registry.checks import configs as hub_configs
from registry.checks.configs import check_adapter_config, load_json_file
from registry.errors import InvalidConfig
from registry.models import slug_validator
from registry.services.resolve import _canonical_method

from .upload_helpers import SEQ_BN_CONFIG, adapter_config


def test_both_sides_hold_the_same_objects():
    assert hub_configs.REMOTE_CODE_KEYS is rules.REMOTE_CODE_KEYS
    assert ALIASES is rules.METHOD_ALIASES


@pytest.mark.parametrize("alias", sorted(rules.METHOD_ALIASES))
def test_every_alias_resolves_the_same_on_hub_and_client(alias):
    assert _canonical_method(alias) == canonical_name(alias) == rules.METHOD_ALIASES[alias]
    assert _canonical_method(alias.upper()) == canonical_name(alias.upper())


def _nested_remote(key: str) -> dict:
    return {**SEQ_BN_CONFIG, "leave_out": [], "extra": {"deeper": [{key: "x"}]}}


CONFIGS = [
    dict(SEQ_BN_CONFIG),
    "seq_bn", "pfeiffer", "houlsby", "parallel", "scaled_parallel", "pfeiffer+inv", "lora[r=4]", "no_such_method",
    {**SEQ_BN_CONFIG, "auto_map": {"AutoModel": "x.Y"}},
    {**SEQ_BN_CONFIG, "Trust_Remote_Code": True},
    {**SEQ_BN_CONFIG, "custom_pipelines": {}},
    {**SEQ_BN_CONFIG, "code_revision": "main"},
    {**SEQ_BN_CONFIG, "remote_code": True},
    {**SEQ_BN_CONFIG, "custom_code": "x"},
    {**SEQ_BN_CONFIG, "architecture": "made_up"},
    {**SEQ_BN_CONFIG, "reduction_factor": "sixteen"},
    _nested_remote("auto_map"),
]


def _hub_refuses(config, tmp_path) -> bool:
    path = tmp_path / "adapter_config.json"
    path.write_text(json.dumps(adapter_config(config=config)))
    try:
        check_adapter_config(load_json_file(str(path), "adapter_config.json"))
    except InvalidConfig:
        return True
    return False


def _client_refuses(config) -> bool:
    try:
        load_config(config)
    except InvalidAdapterConfig:
        return True
    return False


@pytest.mark.parametrize("config", CONFIGS, ids=[str(i) for i in range(len(CONFIGS))])
def test_hub_and_client_refuse_the_same_configs(config, tmp_path):
    assert _hub_refuses(config, tmp_path) == _client_refuses(config)


def test_the_set_holds_both_outcomes(tmp_path):
    """The comparison above is not vacuous: some configs pass, every remote-code key is refused."""
    outcomes = [_client_refuses(c) for c in CONFIGS]
    assert outcomes.count(False) >= 5 and outcomes.count(True) >= 8
    for key in rules.REMOTE_CODE_KEYS:
        assert _client_refuses({**SEQ_BN_CONFIG, key: 1}) and _hub_refuses({**SEQ_BN_CONFIG, key: 1}, tmp_path)


SLUGS = ["ukp", "sst-2", "a.b", "a_b", "9lives", "a..b", "-x", ".x", "Upper", "", "x" * 64, "x" * 65, "a b", "a/b"]


@pytest.mark.parametrize("slug", SLUGS)
def test_slug_rule_is_one(slug):
    from django.core.exceptions import ValidationError

    try:
        slug_validator(slug)
        model_accepts = True
    except ValidationError:
        model_accepts = False
    # The database validator is the identifier grammar itself ('..' in a part refused too).
    assert model_accepts == is_slug(slug)
    try:
        AdapterId.parse(f"{slug}/x")
        parses = True
    except InvalidIdentifier:
        parses = False
    assert parses == is_slug(slug)


def test_wire_error_codes_are_the_shared_constants():
    codes = rules.ErrorCodes
    assert hub_errors.InvalidConfig.code == codes.INVALID_CONFIG == InvalidAdapterConfig.code
    assert hub_errors.InvalidIdentifierError.code == codes.INVALID_IDENTIFIER == InvalidIdentifier.code
    assert hub_errors.AdapterNotFoundError.code == codes.ADAPTER_NOT_FOUND
    assert hub_errors.AmbiguousIdentifierError.code == codes.AMBIGUOUS_IDENTIFIER
    assert hub_errors.IncompleteUpload.code == codes.INCOMPLETE_UPLOAD
    assert set(_ERRORS_BY_CODE) <= {v for k, v in vars(codes).items() if k.isupper()}


@pytest.mark.parametrize(
    "text, deep",
    [("{}", False), ("[" * 32 + "]" * 32, False), ("[" * 33 + "]" * 33, True), ("[" * 5000, True),
     ('{"a": "' + "[" * 100 + '"}', False), ("{not json", False), ("]]]]", False)],
)
def test_json_depth_rule(text, deep):
    assert rules.json_too_deep(text) is deep


def test_remote_code_search_is_iterative():
    node: dict = {"auto_map": 1}
    for _ in range(5000):
        node = {"x": [node]}
    assert rules.find_remote_code_key(node).endswith(".auto_map")
