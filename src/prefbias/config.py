"""Load and validate an experiment config against ``schemas/config.schema.yaml``.

Errors name the offending key (dotted path) and say why, e.g.
``config key 'dpo.styles.beta': -1 is less than the minimum of 0``.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).with_name("schemas") / "config.schema.yaml"


class ConfigError(ValueError):
    pass


def load_schema() -> dict[str, Any]:
    """The config schema, with every object that lists ``properties`` closed (a misspelt key
    such as ``sft.batchsize`` is an error) unless it sets ``additionalProperties`` itself."""
    return _closed(yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8")))


def fill_defaults(config: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write every schema default into ``config`` (in place, and returned): each key with a
    ``default`` that an object present in the config leaves out, down to the leaves (``$ref``,
    ``additionalProperties`` and ``items`` followed). Done once, where the config is loaded, so
    each job's params carry every value it reads: a default changed in the schema reruns exactly
    the jobs that read it, and a key written out at its default changes nothing."""
    root = schema if schema is not None else _schema_cached()

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            ref = node["$ref"].removeprefix("#/").split("/")
            target: Any = root
            for part in ref:
                target = target[part]
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return node

    def fill(node: dict[str, Any], value: Any) -> None:
        node = resolve(node)
        if isinstance(value, dict):
            props = node.get("properties", {})
            for key, sub in props.items():
                sub = resolve(sub)
                if key not in value and "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
            extra = node.get("additionalProperties")
            for key, v in value.items():
                if key in props:
                    fill(props[key], v)
                elif isinstance(extra, dict):
                    fill(extra, v)
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            for v in value:
                fill(node["items"], v)

    fill(root, config)
    return config


@functools.cache
def _schema_cached() -> dict[str, Any]:
    return load_schema()


def _closed(node: Any) -> Any:
    if isinstance(node, dict):  # an `if` is a test, not a shape: closing it would never match
        node = {k: v if k == "if" else _closed(v) for k, v in node.items()}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
    elif isinstance(node, list):
        node = [_closed(v) for v in node]
    return node


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Raise :class:`ConfigError` listing every schema violation, each with its key; then fill
    the schema's defaults into ``config`` in place (:func:`fill_defaults`) and return it."""
    schema = load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [f"config key '{_key(e.absolute_path)}': {e.message}" for e in errors]
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))
    fill_defaults(config, schema)
    _check_references(config)
    _check_values(config)
    return config


def _check_values(config: dict[str, Any]) -> None:
    """Value checks a JSON schema cannot express: tiny model shapes that the first training job
    would reject, and local dataset files outside the repository without a pinned sha256."""
    from prefbias.data.fetch import outside_repository, unpinned_outside_message
    from prefbias.models.tiny import DEFAULTS as TINY

    problems = []
    for mid, m in config["models"].items():
        if m.get("source") != "tiny":
            continue
        s = {**TINY, **m}
        hidden, heads, kv = s["hidden_size"], s["num_heads"], s["num_kv_heads"]
        if hidden % heads:
            problems.append(f"config key 'models.{mid}.hidden_size': {hidden} is not divisible "
                            f"by num_heads = {heads}")
        elif (hidden // heads) % 2:
            problems.append(f"config key 'models.{mid}.hidden_size': the head dimension "
                            f"hidden_size / num_heads = {hidden // heads} is odd; rotary "
                            f"position embeddings need an even one")
        if heads % kv:
            problems.append(f"config key 'models.{mid}.num_kv_heads': num_heads = {heads} is not "
                            f"divisible by num_kv_heads = {kv}")
    for name, d in config["datasets"].items():
        if d.get("source") != "local":
            continue
        for split, f in (d.get("files") or {}).items():
            key = f"datasets.{name}.files.{split}"
            if f.get("path") and not f.get("sha256") and outside_repository(f["path"]):
                problems.append(f"config key '{key}.path': "
                                + unpinned_outside_message(f["path"], key))
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def _check_references(config: dict[str, Any]) -> None:
    """Cross-key checks a JSON schema cannot express (names that must refer to other keys)."""
    models = config["models"]
    problems = []
    refs = [("sft.base_model", config["sft"]["base_model"]),
            ("styles.rewriter", config["styles"]["rewriter"]),
            ("reward_winrate.reward_model", config["reward_winrate"]["reward_model"]),
            ("reward_winrate.baseline", config["reward_winrate"]["baseline"])]
    refs += [(f"orpo.instruct_models[{i}]", m)
             for i, m in enumerate(config["orpo"]["instruct_models"])]
    for key, name in refs:
        if name not in models:
            problems.append(f"config key '{key}': model '{name}' is not defined under 'models'")
    from prefbias.plan import sycophancy_ids

    by_model = config["sycophancy"]["backend_by_model"]
    evaluated = set(sycophancy_ids(config)) if by_model else set()
    for name in by_model:
        if name not in models and name not in evaluated:
            problems.append(f"config key 'sycophancy.backend_by_model.{name}': model '{name}' is "
                            "neither defined under 'models' nor a model the sycophancy tasks "
                            "evaluate")
    check = config["judge"].get("check_set")
    if check is not None and check not in config["datasets"]:
        problems.append(f"config key 'judge.check_set': dataset '{check}' is not defined under "
                        "'datasets'")
    if config["sft"]["dataset"] not in config["datasets"]:
        problems.append(f"config key 'sft.dataset': dataset '{config['sft']['dataset']}' is not "
                        "defined under 'datasets'")
    from prefbias.plan import prefsets as known_prefsets

    prefsets = known_prefsets(config)
    for key in ("dpo.ultrafeedback.prefset", "orpo.prefset"):
        node = config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None and node not in prefsets:
            problems.append(f"config key '{key}': unknown preference set '{node}' "
                            f"(known: {', '.join(sorted(prefsets))})")
    for mix, members in config["orpo"]["mixes"].items():
        for i, name in enumerate(members):
            if name not in prefsets:
                problems.append(f"config key 'orpo.mixes.{mix}[{i}]': unknown preference set "
                                f"'{name}' (known: {', '.join(sorted(prefsets))})")
    for style in config["styles"]["names"]:
        if style not in config["styles"]["descriptions"]:
            problems.append(f"config key 'styles.descriptions': no description for style '{style}'")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge, overlay wins (the same semantics as snakemake --configfile)."""
    out = copy.deepcopy(base)
    for k, v in overlay.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(*paths: str | Path) -> dict[str, Any]:
    """Load ``config.yaml`` and overlays in order, merged and validated."""
    config: dict[str, Any] = {}
    for p in paths:
        data = yaml.safe_load(Path(p).read_text(encoding="utf-8")) or {}
        config = deep_merge(config, data)
    validate_config(config)
    return config


def sections_json(config: dict[str, Any], *keys: str) -> str:
    """JSON of config sections, as rules pass them (``--spec``): one key gives that section
    itself; several keys, or a dotted key (``report.bootstrap``: only that subsection, nested as
    in the config), give an object holding just those. Sorted keys, so equal sections give
    equal params and Snakemake's params rerun-trigger fires only on a real change."""
    if len(keys) == 1 and "." not in keys[0]:
        return json.dumps(config[keys[0]], sort_keys=True)
    out: dict[str, Any] = {}
    for key in keys:
        *parents, leaf = key.split(".")
        node, target = config, out
        for p in parents:
            node, target = node[p], target.setdefault(p, {})
        target[leaf] = node[leaf]
    return json.dumps(out, sort_keys=True)
