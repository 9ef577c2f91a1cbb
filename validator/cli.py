"""``python -m validator PATH --backbone NAME_OR_PATH [--json]``: the hub's checks on a local adapter folder.

Exit status: 0 valid, 1 rejected (the adapter is at fault), 2 usage or platform error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional

from .backbones import parse_allow_list
from .errors import ValidatorError

EXIT_VALID, EXIT_REJECTED, EXIT_ERROR = 0, 1, 2
ALLOW_LIST_ENV = "HUB_VALIDATOR_BACKBONES"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m validator",
        description="Validate an adapter folder on its backbone, offline, with the checks the hub runs.",
        epilog="Exit status: 0 valid, 1 rejected, 2 usage or platform error.",
    )
    parser.add_argument("path", help="the adapter folder (adapter_config.json, adapter.safetensors, ...)")
    parser.add_argument("--backbone", required=True,
                        help="an allow-listed model name, or a local model folder (save_pretrained)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--allow-list", metavar="FILE",
                        help=f"a JSON backbone allow-list (default: ${ALLOW_LIST_ENV}, else the built-in list)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--reject-no-effect", action="store_true",
                        help="reject an adapter that does not change the backbone's output (default: a warning)")
    return parser


def _allow_list(option: Optional[str]) -> dict:
    sources = parse_allow_list(None)
    extra = option or os.environ.get(ALLOW_LIST_ENV)
    if extra:
        sources.update(parse_allow_list(extra))
    return sources


def _fail(error: ValidatorError, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"verdict": "error", **error.to_dict()}, indent=2, sort_keys=True, default=str))
    print(f"error [{error.code}]: {error.detail}", file=sys.stderr)
    return EXIT_ERROR


def main(argv: Optional[list] = None) -> int:
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as transformers_logging

    from .loading import BackboneCache, choose_device
    from .pipeline import validate_folder
    from .report import render_text

    if not os.path.isdir(args.path):
        print(f"error [usage]: {args.path!r} is not a folder", file=sys.stderr)
        return EXIT_ERROR
    transformers_logging.disable_progress_bar()  # the report is the output; keep stderr for errors
    try:
        report = validate_folder(args.path, args.backbone, allow_list=_allow_list(args.allow_list),
                                 cache=BackboneCache(device=choose_device(args.device)), allow_local_paths=True,
                                 reject_no_effect=args.reject_no_effect)
    except ValidatorError as exc:
        return _fail(exc, args.json)
    sys.stdout.write(report.to_json() + "\n" if args.json else render_text(report))
    return EXIT_VALID if report.valid else EXIT_REJECTED
