"""CLI subcommands. Each module defines ``register(subparsers)``; :mod:`prefbias.cli` finds them."""
