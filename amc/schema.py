"""One config schema engine for the circuit, method, training and sweep configs: typed coercion from the
dataclass annotations, unknown keys rejected by name, dotted keys, errors naming the key (the caller adds the
source). The error class is the caller's, so each layer raises its own ``ConfigError``.
"""
from __future__ import annotations

import copy
import dataclasses
import re
import typing
from typing import Any, Mapping, Type, Union


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def build(cls, data: Mapping[str, Any], where: str, error: Type[Exception]):
    """An instance of dataclass ``cls`` from a mapping: every key known, every value coerced to its annotation."""
    if not isinstance(data, Mapping):
        raise error(f"{where or 'config'}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in dataclasses.fields(cls)]
    bad = [k for k in data if k not in allowed]
    if bad:
        raise error(f"unknown key{'s' if len(bad) > 1 else ''} {', '.join(repr(join(where, k)) for k in bad)}"
                    f"{suggest(bad[0], allowed)}; allowed keys{' in ' + where if where else ''}: {', '.join(allowed)}")
    return cls(**{k: coerce(v, hints[k], join(where, k), error) for k, v in data.items()})


def coerce(value: Any, tp: Any, key: str, error: Type[Exception]) -> Any:
    """YAML turns 1e-6 into a string and users write 8.0 for an integer: convert to the annotated type."""
    origin = typing.get_origin(tp)
    if origin is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and type(None) in typing.get_args(tp):
            return None
        if len(args) == 1:
            return coerce(value, args[0], key, error)
        if float in args and isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            return float(value)              # YAML 1.1 reads 1e-3 (no dot) as a string: it is a number
        return copy.deepcopy(value)          # a union of several types: the dataclass validates it
    if value is None and tp is not Any:
        raise error(f"{key}: null is not allowed here")
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key, error)
    if origin is list:
        if not isinstance(value, list):
            raise error(f"{key}: expected a list, got {value!r}")
        (inner,) = typing.get_args(tp) or (Any,)
        return [coerce(v, inner, f"{key}[{i}]", error) for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, bool):
            raise error(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise error(f"{key}: expected a number, got {value!r}") from None
    if tp is int:
        if isinstance(value, bool):
            raise error(f"{key}: expected an integer, got {value!r}")
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise error(f"{key}: expected an integer, got {value!r}") from None
        if not as_float.is_integer():
            raise error(f"{key}: expected an integer, got {value!r}")
        return int(as_float)
    if tp is bool:
        if not isinstance(value, bool):
            raise error(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise error(f"{key}: expected a string, got {value!r}")
        return str(value)
    return copy.deepcopy(value)


def set_dotted(data: dict, key: str, value: Any, error: Type[Exception], source: str, create: bool = False) -> None:
    """Set ``a.b.c`` in a nested mapping; a path that does not exist is an error unless ``create``."""
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            continue
        nxt = node.get(part) if isinstance(node, dict) else None
        if nxt is None and create and isinstance(node, dict):
            nxt = node[part] = {}
        if not isinstance(nxt, (dict, list)):
            if nxt is None:
                options = list(node) if isinstance(node, dict) else []
                raise error(f"{source}: unknown key {key!r}{suggest(part, options)}")
            raise error(f"{source}: {'.'.join(parts[:i + 1])} is {nxt!r}, not a mapping (key {key!r})")
        node = nxt
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
        return
    if not create and last not in node:
        raise error(f"{source}: unknown key {key!r}{suggest(last, list(node) if isinstance(node, dict) else [])}")
    node[last] = value


def suggest(key: Any, options) -> str:
    """' (did you mean 'levels'?)' for a near miss among ``options``, else ''."""
    import difflib
    close = difflib.get_close_matches(str(key), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def build_tagged(variants: Mapping[str, type], tag: str, data: Mapping[str, Any], where: str,
                 error: Type[Exception], kind: str = ""):
    """One member of a tagged union of dataclasses: ``data[tag]`` picks the class, the rest is built by ``build``.
    A key the chosen class does not have is an unknown key naming the key and the tag's value."""
    if not isinstance(data, Mapping):
        raise error(f"{where or 'config'}: expected a mapping, got {type(data).__name__} {data!r}")
    data = dict(data)
    name = data.pop(tag, None)
    if name not in variants:
        raise error(f"{join(where, tag)} must be one of {', '.join(variants)}, got {name!r}{suggest(name, variants)}")
    cls = variants[name]
    allowed = [f.name for f in dataclasses.fields(cls)]
    bad = [k for k in data if k not in allowed]
    if bad:
        others = [v for v, c in variants.items() if bad[0] in {f.name for f in dataclasses.fields(c)}]
        hint = f" (a key of {kind or tag} {', '.join(others)})" if others else suggest(bad[0], allowed)
        raise error(f"unknown key{'s' if len(bad) > 1 else ''} {', '.join(repr(join(where, k)) for k in bad)} for "
                    f"{kind or tag} {name!r}{hint}; its keys: {', '.join(allowed)}")
    try:
        return build(cls, data, where, error)
    except error as exc:
        text = str(exc)
        if text.startswith("unknown key"):       # in a section of the member: say which member
            raise error(f"{text.split(';')[0]} for {kind or tag} {name!r};{';'.join(text.split(';')[1:])}") from None
        raise
