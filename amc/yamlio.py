"""Reading a YAML file that must hold a mapping, with errors that name the file (shared by every config loader).

A key written twice in one mapping is an error (PyYAML keeps the last one silently): the user meant one of them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

import yaml

from amc.errors import ConfigError


class DuplicateKeyError(yaml.YAMLError):
    pass


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated within one mapping."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            continue                  # the base constructor names an unhashable key itself
        if key in seen:
            raise DuplicateKeyError(f"key {key!r} appears twice in one mapping (line {seen[key] + 1} and line "
                                    f"{key_node.start_mark.line + 1}); keep one")
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_text(text: str):
    """yaml.safe_load, with duplicate keys refused."""
    return yaml.load(text, Loader=StrictLoader)


def read_yaml_mapping(path: Union[str, Path], error: type[Exception] = ConfigError, what: str = "config file") -> dict:
    path = Path(path)
    if path.is_dir():
        raise error(f"{what} {path} is a directory, not a file")
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    try:
        data = load_yaml_text(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); "
                    "save the file as UTF-8") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None
    except DuplicateKeyError as exc:
        raise error(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level")
    return data
