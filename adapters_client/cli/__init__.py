"""``adapters-client`` (also ``python -m adapters_client``): resolve, download, push, validate, cache, login.

Every command takes ``--json``. Exit codes: 0 ok, 1 the adapter or request was refused, 2 a usage or
platform error (see ``output``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from . import commands
from .output import EXIT_ERROR, fail

EPILOG = "exit status: 0 ok, 1 the adapter or request was refused, 2 usage or platform error"


class _Parser(argparse.ArgumentParser):
    """argparse that exits with 2 and, under --json, says so in JSON too."""

    json_mode = False  # set by main from its argv

    def error(self, message):
        if _Parser.json_mode:
            fail(_Usage(message), True)
            sys.exit(EXIT_ERROR)
        super().error(message)


class _Usage(Exception):
    code = "usage"


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the result (or the error) as JSON")
    common.add_argument("--hub", metavar="URL", help="the hub's base URL (default: $ADAPTERS_HUB_URL)")
    common.add_argument("--cache-dir", metavar="DIR", help="the cache folder (default: $ADAPTERS_CACHE)")
    return common


def _filters(parser) -> None:
    parser.add_argument("identifier", help="task/subtask[@org], e.g. sentiment/rotten-tomatoes@demo")
    parser.add_argument("--model-name", help="the backbone, when the adapter exists for several")
    parser.add_argument("--config", help="the method (seq_bn, lora, ...) or a config hash")
    parser.add_argument("--version", help="a version (default: the adapter's default version)")


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = _Parser(prog="adapters-client", description="Find, download, check and share adapters.",
                     epilog=EPILOG)
    parser.add_argument("-V", "--client-version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("resolve", parents=[common], help="show which version an identifier resolves to",
                       epilog=EPILOG)
    _filters(p)
    p.set_defaults(run=commands.cmd_resolve)

    p = sub.add_parser("download", parents=[common], help="download into the cache; print the folder",
                       epilog=EPILOG)
    _filters(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=commands.cmd_download)

    p = sub.add_parser("push", parents=[common], help="upload a saved adapter folder as a new version",
                       epilog=EPILOG + "; with --wait: 0 valid, 1 rejected, 2 error or no verdict in time")
    p.add_argument("folder", help="the folder written by save_adapter")
    p.add_argument("identifier", help="task/subtask@org")
    p.add_argument("--version", required=True, help="the new version, e.g. 1 or 1.0.2")
    p.add_argument("--model-name", help="the backbone's public name (required when the config records a path)")
    p.add_argument("--token", help="an upload token (default: $ADAPTERS_HUB_TOKEN, else the saved login)")
    p.add_argument("--claimed-score", type=float)
    p.add_argument("--description")
    p.add_argument("--license")
    p.add_argument("--visibility", choices=["public", "private"])
    p.add_argument("--wait", action="store_true", help="wait for the hub's verdict and print its report")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait with --wait (default 600)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=commands.cmd_push)

    p = sub.add_parser("validate", parents=[common], help="run the hub's checks on a local folder",
                       epilog="exit status: 0 valid, 1 rejected, 2 usage or platform error (or no validator)")
    p.add_argument("folder")
    p.add_argument("--backbone", help="model name or local model folder (default: the config's model_name)")
    p.add_argument("--allow-list", metavar="FILE", help="a JSON backbone allow-list for the validator")
    p.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    p.add_argument("--static-only", action="store_true", help="only the checks that need no backbone")
    p.set_defaults(run=commands.cmd_validate)

    p = sub.add_parser("convert", parents=[common], help="rewrite a folder with pickled weights as safetensors",
                       epilog="A folder saved by the adapters library with pytorch_*.bin weights (its default, and its "
                              "only choice for prefix tuning) becomes one the hub takes; the pickles are read "
                              "with torch.load(weights_only=True). " + EPILOG)
    p.add_argument("folder", help="the folder written by save_adapter (or save_adapter_fusion, save_head)")
    p.add_argument("output", help="the new folder (must not exist unless --force)")
    p.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(run=commands.cmd_convert)

    p = sub.add_parser("cache", help="list, prune or verify the local cache", epilog=EPILOG)
    cache_sub = p.add_subparsers(dest="cache_command", required=True, parser_class=_Parser)
    cache_sub.add_parser("ls", parents=[common], help="list cached adapters")
    prune = cache_sub.add_parser("prune", parents=[common], help="remove cached adapters and leftovers")
    prune.add_argument("--all", action="store_true", help="remove every cached adapter")
    prune.add_argument("--older-than", type=float, metavar="DAYS", help="remove refs unused for DAYS days")
    prune.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    verify = cache_sub.add_parser("verify", parents=[common], help="re-hash every cached file (exit 1: corrupt)")
    verify.add_argument("--no-repair", action="store_true", help="report corrupt files without removing them")
    p.set_defaults(run=commands.cmd_cache)

    p = sub.add_parser("login", parents=[common], help="save a hub token for the library and the CLI",
                       epilog=EPILOG)
    p.add_argument("--token", help="the token (default: standard input, or a prompt)")
    p.add_argument("--no-verify", action="store_true", help="save without checking the token with the hub")
    p.set_defaults(run=commands.cmd_login)

    p = sub.add_parser("logout", parents=[common], help="remove the saved token")
    p.set_defaults(run=commands.cmd_logout)
    return parser


def _version() -> str:
    from .. import __version__

    return f"adapters-client {__version__}"


def main(argv: Optional[list] = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _Parser.json_mode = "--json" in argv
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every failure becomes a message and an exit code, not a traceback
        return fail(exc, args.json)


__all__ = ["main", "build_parser"]
