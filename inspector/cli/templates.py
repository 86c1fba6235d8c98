"""`causallm-inspect templates`: the chat templates TRL ships, by the names --chat-template takes."""

from __future__ import annotations

import argparse

from inspector.cli.options import dump


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("templates", help="the chat templates TRL ships, for --chat-template NAME")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from inspector.core.data.trl_templates import families, templates_folder

    rows = [{"name": n, "training_variant": t, "renders_tool_calls": tools} for n, t, tools in families()]
    if args.json:
        dump({"folder": str(templates_folder() or ""), "templates": rows})
        return 0
    if not rows:
        print("TRL's shipped chat templates were not found (is trl installed?)")
        return 0
    print(f"chat templates TRL ships ({templates_folder()}), for --chat-template NAME:")
    print(f"  {'name':<28} {'generation markers':<22} tool calls")
    for r in rows:
        marks = "yes (NAME_training)" if r["training_variant"] else "no"
        print(f"  {r['name']:<28} {marks:<22} {'rendered' if r['renders_tool_calls'] else '-'}")
    print(
        "NAME uses TRL's _training variant where there is one: the same format, prefix-preserving, with "
        "{% generation %} markers around what the assistant writes (what assistant-only training needs)."
    )
    return 0
