"""Reading a YAML file that must hold a mapping, with errors that name the file (shared by every config loader)."""
from __future__ import annotations

from pathlib import Path
from typing import Union

import yaml

from amc.errors import ConfigError


def read_yaml_mapping(path: Union[str, Path], error: type[Exception] = ConfigError, what: str = "config file") -> dict:
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); "
                    "save the file as UTF-8") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level")
    return data
