"""The subcommands of ``adapters-client``; each returns an exit code (see ``output``)."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from .output import EXIT_ERROR, EXIT_OK, EXIT_REFUSED, UsageError, describe_resolution, describe_version, emit

_VERDICT_EXIT = {"valid": EXIT_OK, "rejected": EXIT_REFUSED, "error": EXIT_ERROR}


def _hub(args):
    from ..hub_api import HubClient

    hub = HubClient(base_url=args.hub) if args.hub else HubClient()
    if getattr(args, "token", None):
        hub.token = args.token
    return hub


def _filters(args) -> dict:
    return {"model_name": args.model_name, "config": args.config, "version": args.version}


def cmd_resolve(args) -> int:
    from ..hub import resolve

    info = resolve(args.identifier, hub=_hub(args), cache_dir=args.cache_dir, **_filters(args))
    emit(info, args.json, describe_resolution(info))
    return EXIT_OK


def cmd_download(args) -> int:
    from ..hub import fetch

    progress = not args.no_progress and not args.json and sys.stderr.isatty()
    resolution, folder = fetch(args.identifier, hub=_hub(args), cache_dir=args.cache_dir, progress=progress,
                               **_filters(args))
    emit({"path": str(folder), "resolution": resolution}, args.json, str(folder))
    return EXIT_OK


def cmd_push(args) -> int:
    from ..hub import push

    progress = None if not (args.no_progress or args.json) else False
    answer = push(args.folder, args.identifier, version=args.version, token=args.token, model_name=args.model_name,
                  claimed_score=args.claimed_score, description=args.description or "", license=args.license or "",
                  visibility=args.visibility, hub=_hub(args), wait=args.wait, timeout=args.timeout,
                  progress=progress)
    if not args.wait:
        emit(answer, args.json, f"pushed {answer.get('identifier')} version {answer.get('version')}: "
                                f"{answer.get('status')}")
        return EXIT_OK
    emit(answer, args.json, describe_version(answer))
    return _VERDICT_EXIT.get(answer.get("status"), EXIT_ERROR)


def cmd_validate(args) -> int:
    from .. import publish

    folder = Path(args.folder)
    if not folder.is_dir():
        raise UsageError(f"{args.folder!r} is not a folder")
    publish.load_validator()
    if args.static_only:
        files = publish.upload_files(folder)
        problems = publish.validator_problems(files)
        verdict = "rejected" if problems else "valid"
        emit({"verdict": verdict, "problems": problems, "static_only": True}, args.json,
             f"verdict: {verdict.upper()} (static checks only)"
             + "".join(f"\n  {p.get('code')}: {p.get('detail', '')}" for p in problems))
        return EXIT_REFUSED if problems else EXIT_OK
    return _validate_on_backbone(args, folder)


def cmd_convert(args) -> int:
    from ..convert import convert_folder

    result = convert_folder(args.folder, args.output, overwrite=args.force)
    converted = ", ".join(f"{a} -> {b}" for a, b in result["converted"].items()) or "nothing to convert"
    emit(result, args.json, f"wrote {result['path']} ({converted}; {result['deduplicated']} tied alias keys stored "
                            f"once)\nnext: adapters-client push {result['path']} <task/subtask@org> --version ...")
    return EXIT_OK


def _validate_on_backbone(args, folder: Path) -> int:
    import json

    from validator.cli import _allow_list
    from validator.errors import AdapterFault
    from validator.loading import BackboneCache, choose_device
    from validator.pipeline import validate_folder
    from validator.report import render_text

    backbone = args.backbone
    if not backbone:
        try:
            backbone = json.loads((folder / "adapter_config.json").read_text()).get("model_name")
        except (OSError, ValueError):
            backbone = None
    if not backbone:
        raise UsageError("no --backbone given and adapter_config.json records no model_name")
    try:
        report = validate_folder(folder, backbone, allow_list=_allow_list(args.allow_list),
                                 cache=BackboneCache(device=choose_device(args.device)), allow_local_paths=True)
    except AdapterFault as exc:  # a PlatformFault (exit 2) is reported by main
        emit({"verdict": "rejected", **exc.to_dict()}, args.json, f"verdict: REJECTED ({exc.code}) {exc.detail}")
        return EXIT_REFUSED
    emit(report.to_dict(), args.json, render_text(report))
    return EXIT_OK if report.valid else EXIT_REFUSED


def cmd_login(args) -> int:
    from ..hub_api import save_token

    token = args.token
    if token is None and not sys.stdin.isatty():
        token = sys.stdin.readline()
    if token is None:
        token = getpass.getpass("token: ")
    token = (token or "").strip()
    if not token:
        raise UsageError("no token given (--token, standard input or the prompt)")
    if not args.no_verify:
        hub = _hub(args)
        hub.token = token
        hub.request("GET", "/api/v1/tokens", params={"page_size": 1})
    path = save_token(token)
    emit({"token_path": str(path), "verified": not args.no_verify}, args.json,
         f"token saved to {path}" + ("" if args.no_verify else " (checked with the hub)"))
    return EXIT_OK


def cmd_logout(args) -> int:
    from ..hub_api import delete_token, token_path

    removed = delete_token()
    emit({"token_path": str(token_path()), "removed": removed}, args.json,
         f"removed {token_path()}" if removed else "no saved token")
    if os.environ.get("ADAPTERS_HUB_TOKEN"):
        print("note: ADAPTERS_HUB_TOKEN is still set in the environment", file=sys.stderr)
    return EXIT_OK


def cmd_cache(args) -> int:
    from .. import cache_admin
    from ..cache import cache_dir

    root = cache_dir(args.cache_dir)
    if args.cache_command == "ls":
        entries = cache_admin.list_cached(root)
        lines = [f"{e.get('identifier') or '(no ref)'}  v{e.get('version')}  {e.get('model_name')}  "
                 f"{e.get('method')}  {e.get('size')} B  {e['digest'][:12]}" + ("" if e["complete"] else "  INCOMPLETE")
                 for e in entries]
        emit({"cache": str(root), "adapters": entries}, args.json, "\n".join(lines) or f"{root}: empty")
        return EXIT_OK
    if args.cache_command == "prune":
        if not args.all and args.older_than is None:
            raise UsageError("say what to prune: --all, or --older-than DAYS (orphans are always removed)")
        result = cache_admin.prune(root, everything=args.all, older_than_days=args.older_than, dry_run=args.dry_run)
        verb = "would remove" if args.dry_run else "removed"
        emit(result, args.json, f"{verb} {len(result['refs'])} refs, {len(result['snapshots'])} snapshots, "
                                f"{len(result['blobs'])} blobs ({result['bytes']} bytes), {len(result['tmp'])} "
                                "temporary files")
        return EXIT_OK
    result = cache_admin.verify(root, repair=not args.no_repair)
    text = f"checked {result['blobs']} blobs and {result['snapshots']} snapshots: {len(result['corrupt'])} corrupt"
    text += "".join(f"\n  {c['path']}" for c in result["corrupt"])
    emit(result, args.json, text)
    return EXIT_REFUSED if result["corrupt"] else EXIT_OK
