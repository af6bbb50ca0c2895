"""``prefbias config show [KEY]``: a config a person can explore.

For a dotted key (``sft.batch_size``, ``models.smollm2-135m-it.source``, ``judge``) it prints the
resolved value (the merged config files, or the schema's default where they leave the key out),
the schema's default, the schema's rules and description, and the comment the config file and
the schema carry at that key. A key that neither the config nor the schema knows gets "did you
mean ..." suggestions (difflib) and exit status 2.

Descriptions: a schema ``description`` where there is one, else the ``# comment`` at the key in
``schemas/config.schema.yaml``; the config files' comments come from their own YAML (line marks
of PyYAML's node tree, so the text of strings is never mistaken for a comment).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prefbias.config import SCHEMA_PATH, deep_merge, load_schema

MISSING = object()
RULE_KEYS = ("type", "enum", "const", "minimum", "maximum", "exclusiveMinimum",
             "exclusiveMaximum", "minLength", "pattern", "minItems", "maxItems", "uniqueItems",
             "required")


class UnknownKey(KeyError):
    def __init__(self, key: str, suggestions: list[str]):
        super().__init__(key)
        self.key, self.suggestions = key, suggestions

    def __str__(self) -> str:
        hint = (" Did you mean " + " or ".join(f"'{s}'" for s in self.suggestions) + "?"
                if self.suggestions else "")
        return f"unknown config key '{self.key}'.{hint}"


@dataclass
class KeyInfo:
    key: str
    value: Any = MISSING            # resolved: the config's value, else the schema default
    source: str = ""                # which file set it, or "schema default"
    default: Any = MISSING
    rules: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    comments: dict[str, str] = field(default_factory=dict)   # file -> comment at the key


# -- schema ---------------------------------------------------------------------------------------
def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        target: Any = root
        for part in ref.lstrip("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def schema_node(path: list[str], schema: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The schema object describing ``path`` (properties, map values, list items), or None."""
    root = schema or load_schema()
    node = _resolve(root, root)
    for part in path:
        props = node.get("properties") or {}
        if part in props:
            node = props[part]
        elif part.isdigit() and isinstance(node.get("items"), dict):
            node = node["items"]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
        node = _resolve(node, root)
    return node


def _schema_keys(schema: dict[str, Any]) -> list[str]:
    out: list[str] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        node = _resolve(node, schema)
        for k, v in (node.get("properties") or {}).items():
            key = f"{prefix}{k}"
            out.append(key)
            if isinstance(v, dict):
                walk(v, key + ".")

    walk(schema, "")
    return out


def _config_keys(cfg: Any, prefix: str = "") -> list[str]:
    out: list[str] = []
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            key = f"{prefix}{k}"
            out.append(key)
            out += _config_keys(v, key + ".")
    return out


# -- comments ---------------------------------------------------------------------------
def yaml_comment(path: str | Path, key: list[str]) -> str:
    """The comment at ``key`` in a YAML file: full-line comments right above the key's line,
    the comment after it on its line, and comment lines continuing it below (same column)."""
    text = Path(path).read_text(encoding="utf-8")
    node = yaml.compose(text)
    found = None
    for part in key:
        if not isinstance(node, yaml.MappingNode):
            return ""
        for knode, vnode in node.value:
            if knode.value == part:
                found, node = (knode, vnode), vnode
                break
        else:
            return ""
    if found is None:
        return ""
    knode, vnode = found
    lines = text.splitlines()
    row = knode.start_mark.line
    line = lines[row]
    start = vnode.end_mark.column if vnode.end_mark.line == row else knode.end_mark.column
    parts: list[str] = []
    above = []
    r = row - 1
    while r >= 0 and lines[r].strip().startswith("#"):
        above.insert(0, lines[r].strip().lstrip("#").strip())
        r -= 1
    above = [a for a in above if a.strip("-=#* ")]  # section rulers say nothing
    parts += above
    hash_at = line.find("#", start)
    if hash_at >= 0:
        parts.append(line[hash_at + 1:].strip())
        r = row + 1
        while r < len(lines) and lines[r].strip().startswith("#") and \
                lines[r].index("#") == hash_at:
            parts.append(lines[r].strip().lstrip("#").strip())
            r += 1
    return " ".join(p for p in parts if p)


# -- lookup ---------------------------------------------------------------------------------------
def _get(cfg: Any, path: list[str]) -> Any:
    node = cfg
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node


def explain(key: str, configfiles: list[str | Path]) -> KeyInfo:
    """What the run uses for ``key`` and why (:class:`KeyInfo`); :class:`UnknownKey` with
    suggestions when neither the config files nor the schema know it."""
    schema = load_schema()
    path = [p for p in key.split(".") if p]
    loaded = [(str(f), yaml.safe_load(Path(f).read_text(encoding="utf-8")) or {})
              for f in configfiles]
    merged: dict[str, Any] = {}
    for _, data in loaded:
        merged = deep_merge(merged, data)
    node = schema_node(path, schema)
    value = _get(merged, path)
    if node is None and value is MISSING:
        known = sorted(set(_schema_keys(schema)) | set(_config_keys(merged)))
        raise UnknownKey(key, difflib.get_close_matches(key, known, n=3, cutoff=0.6))
    info = KeyInfo(key=key)
    if node is not None:
        info.default = node.get("default", MISSING)
        info.rules = {k: node[k] for k in RULE_KEYS if k in node}
        if "properties" in node:
            info.rules["keys"] = list(node["properties"])
        info.description = node.get("description") or yaml_comment(SCHEMA_PATH,
                                                                    _schema_path(path, schema))
    if value is not MISSING:
        info.value = value
        info.source = next(f for f, data in reversed(loaded) if _get(data, path) is not MISSING)
    elif info.default is not MISSING:
        info.value, info.source = info.default, "schema default"
    for f, data in loaded:
        if _get(data, path) is not MISSING:
            c = yaml_comment(f, path)
            if c:
                info.comments[f] = c
    return info


def _schema_path(path: list[str], schema: dict[str, Any]) -> list[str]:
    """Where ``path`` sits in the schema file (``properties`` nesting; map and list levels
    have no key of their own there, so the walk stops at the first one)."""
    out: list[str] = []
    node = schema
    for part in path:
        props = node.get("properties") or {}
        if part not in props:
            break
        out += ["properties", part]
        node = props[part]
        if "$ref" in node:
            break
    return out


def _fmt(v: Any) -> str:
    if v is MISSING:
        return "(none)"
    if isinstance(v, (dict, list)):
        text = yaml.safe_dump(v, sort_keys=False, allow_unicode=True, width=100).rstrip()
        return "\n" + "\n".join("    " + ln for ln in text.splitlines())
    return json.dumps(v, ensure_ascii=False)


def render(info: KeyInfo) -> str:
    src = f"({info.source}) " if info.source else ""
    lines = [f"key:         {info.key}",
             f"value:       {src}{_fmt(info.value)}",
             f"default:     {_fmt(info.default)}"]
    if info.rules:
        lines.append("schema:      " + ", ".join(f"{k} {json.dumps(v)}"
                                                 for k, v in info.rules.items()))
    lines.append(f"description: {info.description or '(none in the schema)'}")
    for f, c in info.comments.items():
        lines.append(f"comment in {f}: {c}")
    return "\n".join(lines)
