"""`causallm-inspect models`: the embedded model, the cache and its state."""

from __future__ import annotations

import argparse

from inspector.cli.options import dump


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="the embedded model, the cache and its state")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from inspector.core.models import cache_report

    report = cache_report()
    if args.json:
        dump(report)
        return 0
    e = report["embedded"]
    print(f"embedded model: {e['title']}")
    print(f"  from the PyPI package {e['package']}")
    print(f"  fp32 cache: {e['cache_path']} ({'converted' if e['converted'] else 'not converted yet: the first run converts it'})")
    print(f"cache folder: {report['cache_dir']} (set {report['cache_env']} to move it)")
    for entry in report["entries"]:
        state = "complete" if entry["complete"] else "INCOMPLETE (ignored, rebuilt on next use)"
        print(f"  {entry['name']}: {entry['bytes'] / 1e6:.0f} MB, {state}")
    if not report["entries"]:
        print("  (empty)")
    print("other models: pass --model with a local folder, a .gguf file, or a Hugging Face id already in the local cache")
    return 0
