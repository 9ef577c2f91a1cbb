import pytest

from adapters_client import AdapterId, InvalidIdentifier, parse_identifier
from adapters_client.identifiers import looks_like_identifier


@pytest.mark.parametrize(
    "text, expected",
    [
        ("sentiment/sst-2@ukp", AdapterId("sentiment", "sst-2", "ukp")),
        ("nli/multinli", AdapterId("nli", "multinli", None)),
        ("qa/squad_v1.1@my-org", AdapterId("qa", "squad_v1.1", "my-org")),
        ("a/" + "b" * 64, AdapterId("a", "b" * 64)),
    ],
)
def test_valid_identifiers_parse_and_round_trip(text, expected):
    parsed = parse_identifier(text)
    assert parsed == expected
    assert str(parsed) == text
    assert parse_identifier(str(parsed)) == parsed


@pytest.mark.parametrize(
    "text",
    [
        "", "sentiment", "sentiment/", "/sst-2", "sentiment/sst-2@", "sentiment//sst-2", "a/b/c",
        "Sentiment/sst-2", "sentiment/sst 2", " sentiment/sst-2", "sentiment/sst-2@ukp@x", "sentiment/../x",
        "sentiment/a..b", "-x/y", "x/.y", "x/y@-org", "a/" + "b" * 65, "x/y\n", "x/y\x00", "sentiment\\sst-2",
        "x/y@UKP",
    ],
)
def test_invalid_identifiers_raise_with_the_grammar(text):
    with pytest.raises(InvalidIdentifier) as info:
        parse_identifier(text)
    assert "<task>/<subtask>[@<org>]" in str(info.value)
    assert info.value.code == "invalid_identifier"
    assert isinstance(info.value, ValueError)
    assert not looks_like_identifier(text)


def test_non_string_is_refused():
    with pytest.raises(InvalidIdentifier):
        parse_identifier(42)


def test_identifier_is_frozen_and_hashable():
    ident = parse_identifier("sentiment/sst-2@ukp")
    with pytest.raises(AttributeError):
        ident.task = "x"
    assert {ident: 1}[AdapterId("sentiment", "sst-2", "ukp")] == 1
    assert ident.path == "sentiment/sst-2"
