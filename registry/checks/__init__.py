"""Checks for uploaded files: pure functions (no ORM) that raise the typed errors of registry.errors.

Each check takes a path (or bytes / a parsed dict) and either returns what it learnt or
raises. Nothing here ever unpickles, executes or imports uploaded content.
"""

from .archives import extract_archive
from .configs import AdapterMeta, check_adapter_config, check_head_config, check_fusion_config, load_json_file
from .files import (
    ALLOWED_FILENAMES,
    check_file_set,
    check_filename,
    check_limits,
    check_not_pickle,
    check_declared_digests,
    sha256_file,
    version_digest,
)
from .folder import check_folder
from .safetensors import check_safetensors

__all__ = [
    "ALLOWED_FILENAMES",
    "AdapterMeta",
    "check_adapter_config",
    "check_declared_digests",
    "check_file_set",
    "check_filename",
    "check_folder",
    "check_fusion_config",
    "check_head_config",
    "check_limits",
    "check_not_pickle",
    "check_safetensors",
    "extract_archive",
    "load_json_file",
    "sha256_file",
    "version_digest",
]
