"""The ``vllm`` backend's engine in its own interpreter: ``-m prefbias.generation.vllm_worker``.

vLLM cannot share the training environment (it pins transformers < 5.20), so where the job's
interpreter has no ``vllm`` (``.venv`` here; on the cluster the vllm image has it and the engine
runs in-process), :class:`prefbias.generation.vllm_backend.VLLMWorkerBackend` starts this module
with the python of ``.venv-vllm`` (``scripts/setup-vllm-env.sh``) and talks to it in JSON lines:

* parent -> worker, on stdin: ``{"op": "init", "model": DIR, "opts": {...}}`` once, then any
  number of ``{"op": "generate", "requests": [{"id", "messages"}], "sampling": {...}}``; EOF ends
  the worker.
* worker -> parent, on the file descriptor it was given (``--fd``, default a duplicate of stdout;
  vLLM's own logging goes to stderr): ``{"ready": {"model", "revision", "context"}}`` after init;
  one ``{"result": {...GenResult}}`` per request as each chunk finishes, then ``{"done": n}``;
  ``{"error": {"type", "message"}}`` instead when the engine or a request fails (the parent
  raises the same :class:`GenerationError` subclass).

The engine itself is :class:`prefbias.generation.vllm_backend.VLLMBackend`: the same code, the
same chat-template rendering and sampling mapping, whichever interpreter runs it.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from typing import Any, TextIO


def _send(out: TextIO, obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    out.flush()


def _error(e: BaseException) -> dict[str, Any]:
    from prefbias.generation.base import ContextOverflowError, GenerationError

    kind = ("ContextOverflowError" if isinstance(e, ContextOverflowError) else
            "GenerationError" if isinstance(e, GenerationError) else type(e).__name__)
    return {"error": {"type": kind, "message": str(e)}}


def serve(inp: TextIO, out: TextIO) -> int:
    """Answer the JSON-line protocol of the module docstring until EOF on ``inp``."""
    from prefbias.generation.base import GenRequest, Sampling
    from prefbias.generation.vllm_backend import VLLMBackend

    backend = None
    for line in inp:
        if not line.strip():
            continue
        msg = json.loads(line)
        try:
            if msg["op"] == "init":
                backend = VLLMBackend(msg["model"], **msg.get("opts", {}))
                _send(out, {"ready": {"model": backend.model, "revision": backend.revision,
                                      "context": backend.context}})
            elif msg["op"] == "generate":
                if backend is None:
                    raise RuntimeError("generate before init")
                reqs = [GenRequest(r["id"], r["messages"]) for r in msg["requests"]]
                n = 0
                for res in backend.generate_iter(reqs, Sampling.from_dict(msg["sampling"])):
                    _send(out, {"result": asdict(res)})
                    n += 1
                _send(out, {"done": n})
            else:
                raise RuntimeError(f"unknown op {msg['op']!r}")
        except Exception as e:  # noqa: BLE001 - reported to the parent, which raises it
            _send(out, _error(e))
            if backend is None:
                return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse
    import logging

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fd", type=int, default=None,
                   help="protocol output file descriptor (default: a duplicate of stdout, which "
                        "is then pointed at stderr so that nothing else can write to it)")
    args = p.parse_args(argv)
    if args.fd is None:
        fd = os.dup(1)
        os.dup2(2, 1)  # library prints (vLLM logs to stdout by default) go to the log
        sys.stdout = sys.stderr
    else:
        fd = args.fd
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        return serve(sys.stdin, out)


if __name__ == "__main__":
    sys.exit(main())
