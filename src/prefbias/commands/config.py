"""``prefbias config show [KEY]``: the resolved value of a config key, its default and its
description (prefbias.config_show)."""

from __future__ import annotations

import sys


def _show(a) -> int:
    import yaml

    from prefbias.config_show import UnknownKey, explain, render

    if not a.key:
        from prefbias.config import load_config

        sys.stdout.write(yaml.safe_dump(load_config(*a.configfile), sort_keys=False,
                                        allow_unicode=True, width=100))
        return 0
    try:
        info = explain(a.key, a.configfile)
    except UnknownKey as e:
        sys.stderr.write(f"prefbias config show: {e}\n")
        return 2
    sys.stdout.write(render(info) + "\n")
    return 0


def register(sub) -> None:
    p = sub.add_parser("config", help="explore the experiment config (config show [KEY])")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    s = csub.add_parser("show", help="resolved value, default and description of a config key "
                        "(dotted: sft.batch_size); no KEY: the whole merged config")
    s.add_argument("key", nargs="?", default=None)
    s.add_argument("--configfile", nargs="+", default=["config.yaml"],
                   help="config.yaml and overlays, merged in order as snakemake --configfile")
    s.set_defaults(func=_show)
