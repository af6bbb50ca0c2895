"""``prefbias preflight``: check the config against the live Slurm cluster before submitting,
and ``prefbias resources``: show the Slurm resources every rule gets."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub) -> None:
    p = sub.add_parser("preflight", help="check partitions, accounts, GPU/CPU/memory requests and "
                       "container images against the live Slurm cluster")
    p.add_argument("--configfile", nargs="+", default=["config.yaml"],
                   help="config.yaml and overlays, merged in order (default: config.yaml)")
    p.add_argument("--rules", nargs="*", default=None,
                   help="rules to check (default: every rule of prefbias.rule_table plus the "
                   "config's resources: entries)")
    p.add_argument("--images", action="store_true",
                   help="also check the container images of the rules (apptainer runs)")
    p.add_argument("--root", default=".", help="repository root (rules/, relative image paths)")
    p.set_defaults(func=cmd_preflight)

    r = sub.add_parser("resources", help="print the resolved Slurm resources of each rule (JSON)")
    r.add_argument("--needs", action="store_true",
                   help="print image, GPUs, internet and credentials per rule instead")
    r.add_argument("--markdown", action="store_true",
                   help="with --needs: as docs/HPC.md's table (Markdown)")
    r.add_argument("--configfile", nargs="+", default=["config.yaml"])
    r.add_argument("--attempt", type=int, default=1)
    r.add_argument("--rules", nargs="*", default=None)
    r.add_argument("--root", default=".")
    r.set_defaults(func=cmd_resources)


def rule_images(config: dict, rules: list[str]) -> dict[str, str | None]:
    """``{"rule[image name]": image path or URI}`` of the rules that run a command in a container
    (:func:`prefbias.hpc.needs.image_name` for ``config``; None: not in config ``containers:``)."""
    from prefbias.hpc import needs
    from prefbias.rule_table import entry

    containers = config.get("containers") or {}
    out = {}
    for r in rules:
        if entry(r).container:
            name = needs.image_name(config, r)
            out[f"{r}[{name}]"] = containers.get(name)
    return out


def _load(args) -> dict:
    from prefbias.config import load_config

    return load_config(*args.configfile)


def _rules(args, config) -> list[str]:
    """``--rules``, else every rule of prefbias.rule_table (tests/test_rule_table.py: the
    workflow's rules) and every rule the config's ``resources:`` names."""
    from prefbias.rule_table import RULES

    if args.rules:
        return list(args.rules)
    names = set(RULES) | set(config.get("resources") or {})
    names.discard("default")
    names.discard("all")
    return sorted(names)


def cmd_preflight(args: argparse.Namespace) -> int:
    from prefbias.hpc import preflight

    config = _load(args)
    rules = _rules(args, config)
    images = rule_images(config, rules) if args.images else None
    notes: list[str] = []
    try:
        problems = preflight.check(config, rules, images, root=args.root, notes=notes)
    except preflight.PreflightError as e:
        print(f"preflight: {e}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"preflight: note: {note}", file=sys.stderr)
    if problems:
        print(preflight.format_problems(problems), file=sys.stderr)
        return 1
    print(f"preflight: {len(rules)} rules OK against the cluster", file=sys.stderr)
    return 0


def cmd_resources(args: argparse.Namespace) -> int:
    from prefbias.hpc.resources import markdown_table, resolve
    from prefbias.hpc.resources import table as needs_table

    config = _load(args)
    if args.needs:
        rows = needs_table(config, _rules(args, config))
        if args.markdown:
            print(markdown_table(rows), end="")
        else:
            print(json.dumps(rows, indent=2))
        return 0
    table = {r: resolve(config, r, args.attempt) for r in _rules(args, config)}
    print(json.dumps(table, indent=2, sort_keys=True))
    return 0
