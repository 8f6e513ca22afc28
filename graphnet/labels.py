"""Label text shared by the diff log and the drawings: op labels, values, trainer hints, sizes."""

from __future__ import annotations

import inspect
from typing import Any, Iterable, Mapping

from .graph import Node
from .ops import get_op


def op_label(node: Node) -> str:
    """The op with its key params: ``conv 64→128``, ``max_pool 4``, ``linear 512→10 bias=False``.

    ``c_in``/``c_out`` read as an arrow; the op's first param is shown bare; other params
    only where they differ from the op's default.
    """
    signature = get_op(node.op).signature.parameters
    params = dict(node.params)
    parts = []
    if "c_in" in params and "c_out" in params:
        parts.append(f"{params.pop('c_in')}→{params.pop('c_out')}")
    first = next(iter(signature), None)
    if first in params:
        parts.append(fmt(params.pop(first)))
    for name, value in params.items():
        default = signature[name].default if name in signature else inspect.Parameter.empty
        if value != default:
            parts.append(f"{name}={param_text(name, value)}")
    return " ".join([node.op, *parts])


def hint_lines(attrs: Mapping[str, Any], skip: Iterable[str] = ()) -> list[str]:
    """Trainer hints as label lines: ``frozen weight``, ``lr ×64 bias``, ``init whitening(eps=0.01)``."""
    lines = []
    for key, value in attrs.items():
        if key in skip:
            continue
        if key == "frozen":
            lines.append(f"frozen {fmt(value)}")
        elif key in ("lr_mult", "wd_mult") and isinstance(value, Mapping):
            lines += [f"{key[:2]} ×{fmt(m)} {name}" for name, m in value.items()]
        elif key == "init" and isinstance(value, Mapping):
            lines.append(f"init {value.get('name')}({fmt(value.get('params', {}))})")
        else:
            lines.append(f"{key} {fmt(value)}")
    return lines


def si(n: int) -> str:
    """1234567 -> '1.23M'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def fmt(value: Any) -> str:
    """A param or attr value, short: 0.075, 3×3, weight, bias=64."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if isinstance(value, tuple):
        return "×".join(map(fmt, value))
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={param_text(k, v)}" for k, v in value.items())
    return str(value)


def param_text(name: str, value: Any) -> str:
    """A param's value as :func:`fmt` writes it; a buffer's ``values`` as its first entries and count."""
    if name != "values" or not isinstance(value, (list, tuple)):
        return fmt(value)
    head = ", ".join(map(fmt, value[:3]))
    return f"[{head}, … {len(value):,} values]" if len(value) > 3 else f"[{head}]"


def values_change(old: Any, new: Any) -> str:
    """How a buffer's ``values`` changed: where they first differ, and their counts."""
    if not isinstance(old, (list, tuple)) or not isinstance(new, (list, tuple)):
        return f"{param_text('values', old)} → {param_text('values', new)}"
    first = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
    at = f" from entry {first}: {fmt(old[first]) if first < len(old) else '-'} → " \
         f"{fmt(new[first]) if first < len(new) else '-'}" if first < max(len(old), len(new)) else ""
    count = f"{len(old):,}" if len(old) == len(new) else f"{len(old):,} → {len(new):,}"
    return f"{count} values{at}"


def shape_label(shape: tuple[int, ...] | None) -> str:
    """(1, 64, 32, 32) -> '1×64×32×32'; None (not a tensor) -> '-'."""
    return "-" if shape is None else "×".join(map(str, shape))
