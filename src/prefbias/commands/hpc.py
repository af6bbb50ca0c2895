"""``prefbias preflight``: check the config against the live Slurm cluster before submitting,
and ``prefbias resources``: show the Slurm resources every rule gets."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

RULE_RE = re.compile(r"^\s*(?:rule|checkpoint)\s+([A-Za-z_][A-Za-z0-9_]*)\s*:", re.M)
CONTAINER_RE = re.compile(
    r"^\s*container:\s*(?:\n\s*)?(?P<fn>rule_image|image)\((?P<expr>[^\n]*)\)\s*$", re.M)
NAME_RE = re.compile(r"[\"']([A-Za-z0-9_-]+)[\"']")


def register(sub) -> None:
    p = sub.add_parser("preflight", help="check partitions, accounts, GPU/CPU/memory requests and "
                       "container images against the live Slurm cluster")
    p.add_argument("--configfile", nargs="+", default=["config.yaml"],
                   help="config.yaml and overlays, merged in order (default: config.yaml)")
    p.add_argument("--rules", nargs="*", default=None,
                   help="rules to check (default: every rule in rules/*.smk plus the config's)")
    p.add_argument("--images", action="store_true",
                   help="also check the container images of the rules (apptainer runs)")
    p.add_argument("--root", default=".", help="repository root (rules/, relative image paths)")
    p.set_defaults(func=cmd_preflight)

    r = sub.add_parser("resources", help="print the resolved Slurm resources of each rule (JSON)")
    r.add_argument("--needs", action="store_true",
                   help="print image, GPUs, internet and credentials per rule instead")
    r.add_argument("--configfile", nargs="+", default=["config.yaml"])
    r.add_argument("--attempt", type=int, default=1)
    r.add_argument("--rules", nargs="*", default=None)
    r.add_argument("--root", default=".")
    r.set_defaults(func=cmd_resources)


def container_calls(root: Path) -> dict[str, tuple[str, list[str]] | None]:
    """``{rule: (function, [quoted names])}`` of each rule's ``container:`` line in
    ``rules/*.smk`` (``rule_image("judge")`` -> ``("rule_image", ["judge"])``); None: no
    container."""
    out: dict[str, tuple[str, list[str]] | None] = {}
    for smk in sorted((root / "rules").glob("*.smk")):
        text = smk.read_text(encoding="utf-8")
        starts = [(m.start(), m.group(1)) for m in RULE_RE.finditer(text)] + [(len(text), "")]
        for (start, name), (end, _) in zip(starts, starts[1:], strict=False):
            m = CONTAINER_RE.search(text[start:end])
            # names are the quoted strings outside subscripts (config["styles"]["backend"])
            expr = re.sub(r"\[[^\]]*\]", "", m.group("expr")) if m else ""
            out[name] = (m.group("fn"), NAME_RE.findall(expr)) if m else None
    return out


def workflow_rules(root: Path, config: dict | None = None) -> dict[str, list[str]]:
    """``{rule: [image names]}`` parsed from ``rules/*.smk``: ``container: rule_image("r")``
    (the image :func:`prefbias.hpc.needs.image_name` gives rule r for ``config``; without a
    config every image a backend could pick), or a literal ``image("x")``; ``[]`` when a rule
    has none."""
    from prefbias.hpc import needs

    out: dict[str, list[str]] = {}
    for rule, call in container_calls(root).items():
        if call is None:
            out[rule] = []
        elif call[0] == "image":
            out[rule] = call[1]
        elif config is not None:
            out[rule] = [needs.image_name(config, r) for r in call[1]]
        else:
            imgs = {needs.FIXED_IMAGE.get(r, needs.DEFAULT_IMAGE) for r in call[1]}
            for r in call[1]:
                if r in needs.BACKEND_SECTION:
                    imgs = set(needs.BACKEND_IMAGE.values())
            out[rule] = sorted(imgs)
    return out


def _load(args) -> dict:
    from prefbias.config import load_config

    return load_config(*args.configfile)


def _rules(args, config) -> list[str]:
    if args.rules:
        return list(args.rules)
    names = set(workflow_rules(Path(args.root))) | set(config.get("resources") or {})
    names.discard("default")
    names.discard("all")
    return sorted(names)


def cmd_preflight(args: argparse.Namespace) -> int:
    from prefbias.hpc import preflight

    config = _load(args)
    rules = _rules(args, config)
    images = None
    if args.images:
        parsed = workflow_rules(Path(args.root), config)
        containers = config.get("containers") or {}
        images = {f"{r}[{img}]": containers.get(img) for r in rules for img in parsed.get(r, [])}
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
    from prefbias.hpc.resources import resolve
    from prefbias.hpc.resources import table as needs_table

    config = _load(args)
    if args.needs:
        print(json.dumps(needs_table(config, _rules(args, config)), indent=2))
        return 0
    table = {r: resolve(config, r, args.attempt) for r in _rules(args, config)}
    print(json.dumps(table, indent=2, sort_keys=True))
    return 0
