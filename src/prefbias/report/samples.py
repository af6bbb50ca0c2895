"""Samples to read: static HTML pages of the per-sample evaluation outputs (what lm-eval's
``--log_samples`` and HELM's helm-server give), written into ``results/<run>/samples/`` and shown
in Snakemake's report.

One page per kind of sample, every model of the run on it, with a small inline script that
filters the rows by model, by template (prompt set, Answer Suggestion template, Are You Sure
format, style) and by text; a link may preset them (``answer_suggestion.html#model=sft-s0&
template=think_incorrect&q=Sydney``):

* ``generations.html``: each judged generation beside the judge's scores and reasons;
* ``style_rewrites.html``: each style variant's rewritten *chosen* answer beside the original;
* ``answer_suggestion.html``: each Answer Suggestion answer with its grade;
* ``are_you_sure.html``: each Are You Sure dialogue turn by turn, with both grades.

All text is HTML-escaped (``html.escape``): a model writing ``<script>`` shows it as text. Each
page holds at most ``max_rows`` rows per model and kind (the first ones in file order), and says
how many rows the file had.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prefbias.io import atomic_open, iter_jsonl

PAGES = ("generations", "style_rewrites", "answer_suggestion", "are_you_sure")
TITLES = {"generations": "Generations and the judge's scores",
          "style_rewrites": "Style rewrites beside their originals",
          "answer_suggestion": "Answer Suggestion answers and their grades",
          "are_you_sure": "Are You Sure dialogues, turn by turn"}

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.2em;max-width:1200px}
.row{border:1px solid #ccc;border-radius:6px;margin:.6em 0;padding:.5em .8em}
.meta{color:#555;font-size:.85em}
.turn{margin:.3em 0;padding:.3em .5em;border-left:4px solid #999;white-space:pre-wrap}
.user{border-color:#36c;background:#f3f6fc}.assistant{border-color:#393;background:#f4faf4}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:.6em}
.text{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:.9em}
.ok{color:#070;font-weight:bold}.bad{color:#b00;font-weight:bold}.na{color:#888}
table.scores{border-collapse:collapse}table.scores td{border:1px solid #ddd;padding:2px 6px}
#filters{position:sticky;top:0;background:#fff;padding:.4em 0;border-bottom:1px solid #ddd}
"""

_SCRIPT = """
function applyFilter(){
  var m=document.getElementById('f-model').value, t=document.getElementById('f-template').value,
      q=document.getElementById('f-text').value.toLowerCase(), n=0;
  document.querySelectorAll('.row').forEach(function(r){
    var show=(!m||r.dataset.model===m)&&(!t||r.dataset.template===t)&&
             (!q||r.textContent.toLowerCase().indexOf(q)>=0);
    r.style.display=show?'':'none'; if(show)n++;});
  document.getElementById('f-count').textContent=n+' shown';
}
// deep links: page.html#model=sft-s0&template=think_incorrect&q=Sydney preset the filters
window.addEventListener('DOMContentLoaded',function(){
  var h=new URLSearchParams(location.hash.slice(1));
  [['model','f-model'],['template','f-template'],['q','f-text']].forEach(function(p){
    if(h.get(p[0])!==null)document.getElementById(p[1]).value=h.get(p[0]);});
  applyFilter();
});
"""


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _grade(v: Any) -> str:
    if v is None:
        return '<span class="na">ungraded</span>'
    return '<span class="ok">correct</span>' if v else '<span class="bad">incorrect</span>'


def _last_user(messages: list[dict[str, Any]]) -> str:
    users = [m.get("content", "") for m in messages or [] if m.get("role") == "user"]
    return users[-1] if users else ""


def _turns(turns: Iterable[tuple[str, Any]]) -> str:
    return "".join(f'<div class="turn {esc(role)}"><b>{esc(role)}:</b> {esc(text)}</div>'
                   for role, text in turns if text is not None)


def _row(model: str, template: str, body: str, meta: str = "") -> str:
    return (f'<div class="row" data-model="{esc(model)}" data-template="{esc(template)}">'
            f'<div class="meta">{esc(model)} · {esc(template)}{" · " + meta if meta else ""}'
            f'</div>{body}</div>')


def _read(path: Path) -> list[dict[str, Any]]:
    return [row for _, row in iter_jsonl(path)] if path.is_file() else []


# -- the four kinds of rows ------------------------------------------------------------------------
def generation_rows(results: Path, model: str, max_rows: int) -> tuple[list[str], int]:
    gens = _read(results / "generations" / model / "judge.jsonl")
    judged = {r["id"]: r for r in _read(results / "eval" / "judge" / f"{model}.jsonl")}
    out = []
    for g in gens[:max_rows]:
        j = judged.get(g["id"], {})
        scores = j.get("scores") or {}
        reasons = j.get("reasons") or {}
        if isinstance(reasons, str):
            reasons = {"": reasons}
        cells = "".join(f"<tr><td>{esc(d)}</td><td>{esc(_num(v))}</td>"
                        f"<td>{esc(reasons.get(d, '') if isinstance(reasons, dict) else '')}"
                        f"</td></tr>" for d, v in scores.items())
        table = (f'<table class="scores"><tr><td><b>dimension</b></td><td><b>score</b></td>'
                 f'<td><b>reason</b></td></tr>{cells}</table>' if scores
                 else '<span class="na">not judged</span>')
        body = _turns([("user", _last_user(g.get("messages", []))),
                       ("assistant", g.get("response"))]) + table
        out.append(_row(model, "judge prompts", body, f"id {esc(g['id'])} · "
                        f"finish {esc(g.get('finish_reason'))}"))
    return out, len(gens)


def _num(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else ("—" if v is None else str(v))


def style_rows(pairs: list[dict[str, Any]], style: str, max_rows: int) -> list[str]:
    out = []
    for p in pairs[:max_rows]:
        flags = ", ".join(p.get("flags") or []) or "none"
        body = (_turns([("user", _last_user(p.get("prompt", [])))]) +
                f'<div class="cols"><div><b>original chosen</b><div class="text">'
                f'{esc(p.get("original_chosen"))}</div></div><div><b>rewritten ({esc(style)})'
                f'</b><div class="text">{esc(p.get("chosen"))}</div></div></div>')
        out.append(_row(p.get("rewriter") or "rewriter", style, body,
                        f"id {esc(p.get('id'))} · flags {esc(flags)}"))
    return out


def answer_rows(results: Path, model: str, max_rows: int,
                questions: dict[Any, str]) -> tuple[list[str], int]:
    rows = _read(results / "eval" / "sycophancy" / model / "answer.jsonl")
    out = []
    by_template: dict[str, int] = {}
    for r in rows:
        t = r.get("template", "")
        if by_template.get(t, 0) >= max_rows:
            continue
        by_template[t] = by_template.get(t, 0) + 1
        body = _turns([("user", questions.get(r["id"])), ("assistant", r.get("response"))])
        out.append(_row(model, t, body + f"<div>grade: {_grade(r.get('correct'))} "
                        f'<span class="meta">({esc(r.get("grader"))} grader)</span></div>',
                        f"{esc(r.get('dataset'))} · id {esc(r['id'])}"))
    return out, len(rows)


def ays_rows(results: Path, model: str, max_rows: int, questions: dict[Any, list],
             challenge: str, followups: dict[str, str]) -> tuple[list[str], int]:
    rows = _read(results / "eval" / "sycophancy" / model / "are_you_sure.jsonl")
    out = []
    for r in rows[:max_rows]:
        msgs = questions.get(r["id"]) or []
        first_user = _last_user(msgs)
        prefill = msgs[-1]["content"] if msgs and msgs[-1].get("role") == "assistant" else ""
        kind = r.get("kind", "letter")
        turns = [("user", first_user),
                 ("assistant", prefill + str(r.get("first_response"))),  # a prefill is continued
                 ("user", challenge), ("assistant", r.get("challenge_response")),
                 ("user", followups.get(kind)), ("assistant", r.get("final_response"))]
        grades = (f"<div>first answer {esc(r.get('first_answer') or '')}: "
                  f"{_grade(r.get('first_correct'))} · final answer "
                  f"{esc(r.get('final_answer') or '')}: {_grade(r.get('final_correct'))} · "
                  f"revised a correct answer: {esc(r.get('revised'))}</div>")
        out.append(_row(model, r.get("format", kind), _turns(turns) + grades,
                        f"{esc(r.get('dataset'))} · id {esc(r['id'])}"))
    return out, len(rows)


# -- pages ------------------------------------------------------------------------------
def page(kind: str, rows: list[str], *, notice: str, counts: dict[str, int]) -> str:
    models = sorted({_attr(r, "data-model") for r in rows})
    templates = sorted({_attr(r, "data-template") for r in rows})
    opts = lambda xs: "".join(f'<option value="{esc(x)}">{esc(x)}</option>' for x in xs)  # noqa: E731
    note = f'<p class="meta"><b>What ran:</b> {esc(notice)}</p>' if notice else ""
    count = "; ".join(f"{esc(k)}: {v} row{'' if v == 1 else 's'} in its file"
                      for k, v in counts.items())
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{esc(TITLES[kind])}'
            f'</title><style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>'
            f'<h2>{esc(TITLES[kind])}</h2>{note}<p class="meta">{count or "no rows"}</p>'
            f'<div id="filters">model <select id="f-model" onchange="applyFilter()">'
            f'<option value="">all</option>{opts(models)}</select> template '
            f'<select id="f-template" onchange="applyFilter()"><option value="">all</option>'
            f'{opts(templates)}</select> text <input id="f-text" oninput="applyFilter()"> '
            f'<span id="f-count" class="meta">{len(rows)} shown</span></div>'
            + ("".join(rows) or "<p>No samples of this kind in this run.</p>")
            + "</body></html>")


def _attr(row: str, name: str) -> str:
    start = row.index(f'{name}="') + len(name) + 2
    return html.unescape(row[start:row.index('"', start)])


def write_pages(results: str | Path, out_dir: str | Path, *, config: dict[str, Any],
                work: str | Path, max_rows: int = 50) -> list[Path]:
    """The four sample pages of a run into ``out_dir`` (atomically, one file each)."""
    from prefbias import plan

    results, work = Path(results), Path(work)
    notice = plan.provenance_notice(config, plan.run_model_roles(config))
    out: dict[str, tuple[list[str], dict[str, int]]] = {k: ([], {}) for k in PAGES}

    for m in plan.evaluated_stylized_ids(config):  # the judged models' generations
        rows, n = generation_rows(results, m, max_rows)
        out["generations"][0].extend(rows)
        out["generations"][1][m] = n
    for style in config["styles"]["names"]:
        ps = plan.style_prefset(style)
        pairs = _read(work / "data" / "prefs" / ps / "train.jsonl")
        out["style_rewrites"][0].extend(style_rows(pairs, style, max_rows))
        out["style_rewrites"][1][ps] = len(pairs)
    syc = config["sycophancy"]
    answer_q = {r["id"]: _last_user(r.get("messages", []))
                for r in _read(work / "data" / "sycophancy" / "answer.jsonl")}
    ays_q = {r["id"]: r.get("messages", [])
             for r in _read(work / "data" / "sycophancy" / "are_you_sure.jsonl")}
    followups = {"letter": syc.get("are_you_sure_letter_followup"),
                 "free": syc.get("are_you_sure_free_followup")}
    for m in plan.sycophancy_ids(config):
        rows, n = answer_rows(results, m, max_rows, answer_q)
        out["answer_suggestion"][0].extend(rows)
        out["answer_suggestion"][1][m] = n
        rows, n = ays_rows(results, m, max_rows, ays_q, syc.get("are_you_sure_challenge", ""),
                           followups)
        out["are_you_sure"][0].extend(rows)
        out["are_you_sure"][1][m] = n
    written = []
    for kind, (rows, counts) in out.items():
        path = Path(out_dir) / f"{kind}.html"
        with atomic_open(path) as fh:
            fh.write(page(kind, rows, notice=notice, counts=counts))
        written.append(path)
    return written


def page_inputs(config: dict[str, Any]) -> list[str]:
    """Every file the sample pages read (for the rule's ``input:``)."""
    from prefbias import plan

    R, W = plan.resultdir(config), plan.workdir(config)
    files = []
    for m in plan.evaluated_stylized_ids(config):  # the judged models' generations
        files += [f"{R}/generations/{m}/judge.jsonl", f"{R}/eval/judge/{m}.jsonl"]
    files += [plan.prefs_path(config, plan.style_prefset(s), "train")
              for s in config["styles"]["names"]]
    files += [f"{W}/data/sycophancy/answer.jsonl", f"{W}/data/sycophancy/are_you_sure.jsonl"]
    for m in plan.sycophancy_ids(config):
        files += [f"{R}/eval/sycophancy/{m}/answer.jsonl",
                  f"{R}/eval/sycophancy/{m}/are_you_sure.jsonl"]
    return files

