"""Small synthetic SFT/preference data and a tiny model, for tests and benchmarks."""

from __future__ import annotations

import random
from pathlib import Path

from prefbias.io import write_jsonl

WORDS = ("the cat sat on a mat while dogs ran fast in green fields and birds sang loud songs "
         "about rain sun wind snow water fire earth light dark night day good bad yes no").split()


def _text(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def sft_rows(n: int, seed: int = 0, lo: int = 3, hi: int = 30) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        msgs = [{"role": "user", "content": _text(rng, 3, 12)},
                {"role": "assistant", "content": _text(rng, lo, hi)}]
        if i % 3 == 0:
            msgs.insert(0, {"role": "system", "content": "be brief"})
        rows.append({"id": f"s{seed}-{i}", "messages": msgs})
    return rows


def pref_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"id": f"p{seed}-{i}", "prompt": [{"role": "user", "content": _text(rng, 3, 12)}],
             "chosen": _text(rng, 2, 15), "rejected": _text(rng, 2, 15)} for i in range(n)]


def build_model(out_dir: str | Path, seed: int = 1, **overrides) -> Path:
    from prefbias.models.tiny import build_tiny_model

    corpus = [" ".join(WORDS)] * 4 + [_text(random.Random(i), 5, 40) for i in range(50)]
    spec = {"seed": seed, "hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2,
            "intermediate_size": 128, "vocab_size": 300, **overrides}
    return build_tiny_model(out_dir, spec, corpus)


def write_setup(root: str | Path, n_sft: int = 24, n_pairs: int = 16) -> dict[str, Path]:
    root = Path(root)
    paths = {"sft_train": root / "sft/train.jsonl", "sft_test": root / "sft/test.jsonl",
             "prefs_train": root / "prefs/train.jsonl", "prefs_test": root / "prefs/test.jsonl",
             "prefs2_train": root / "prefs2/train.jsonl"}
    write_jsonl(paths["sft_train"], sft_rows(n_sft, 0))
    write_jsonl(paths["sft_test"], sft_rows(8, 1))
    write_jsonl(paths["prefs_train"], pref_rows(n_pairs, 0))
    write_jsonl(paths["prefs_test"], pref_rows(6, 1))
    write_jsonl(paths["prefs2_train"], pref_rows(10, 2))
    return paths
