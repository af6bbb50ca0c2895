"""Validation of chat turns shared by the data converters.

Every check raises :class:`prefbias.io.DataError` naming the file, the 1-based line and the field
(e.g. ``messages[2].role``), so a bad upstream row stops the pipeline with a precise message.
"""

from __future__ import annotations

import os
from typing import Any

from prefbias.io import DataError, check_field

ROLES = ("system", "user", "assistant")


def check_message(msg: Any, field: str, *, path: str | os.PathLike, line: int,
                  role_key: str = "role", content_key: str = "content",
                  roles: tuple[str, ...] = ROLES) -> tuple[str, str]:
    """Return ``(role, content)`` of one turn; content must be a non-empty string."""
    if not isinstance(msg, dict):
        raise DataError(path, f"expected an object, got {type(msg).__name__}", line=line,
                        field=field)
    role = msg.get(role_key)
    if not isinstance(role, str):
        raise DataError(path, "missing or non-string role", line=line, field=f"{field}.{role_key}")
    if role not in roles:
        raise DataError(path, f"unknown role {role!r} (expected one of {', '.join(roles)})",
                        line=line, field=f"{field}.{role_key}")
    if content_key not in msg or msg[content_key] is None:
        raise DataError(path, "missing required field", line=line, field=f"{field}.{content_key}")
    content = msg[content_key]
    if not isinstance(content, str):
        raise DataError(path, f"expected a string, got {type(content).__name__}", line=line,
                        field=f"{field}.{content_key}")
    if not content.strip():
        raise DataError(path, "empty turn", line=line, field=f"{field}.{content_key}")
    return role, content


def check_chat(row: dict, field: str, *, path: str | os.PathLike, line: int,
               end: str = "assistant") -> list[dict[str, str]]:
    """Validate ``row[field]`` as a chat: optional leading system, then user/assistant alternating.

    ``end`` is the role the chat must end with (``assistant`` for full conversations, ``user`` for
    prompts). Returns the turns as plain ``{"role", "content"}`` dicts.
    """
    msgs = check_field(row, field, list, path=path, line=line, nonempty=True)
    out = []
    for i, m in enumerate(msgs):
        role, content = check_message(m, f"{field}[{i}]", path=path, line=line)
        out.append({"role": role, "content": content})
    check_order(out, field, path=path, line=line, end=end)
    return out


def check_order(turns: list[dict[str, str]], field: str, *, path: str | os.PathLike, line: int,
                end: str) -> None:
    start = 1 if turns and turns[0]["role"] == "system" else 0
    body = turns[start:]
    if not body:
        raise DataError(path, "no user turn", line=line, field=field)
    for i, t in enumerate(body):
        want = "user" if i % 2 == 0 else "assistant"
        if t["role"] != want:
            raise DataError(path, f"turns out of order: expected {want!r} at position "
                            f"{i + start}, got {t['role']!r}", line=line,
                            field=f"{field}[{i + start}].role")
    if body[-1]["role"] != end:
        raise DataError(path, f"last turn must be {end!r}, got {body[-1]['role']!r}", line=line,
                        field=f"{field}[{len(turns) - 1}].role")
