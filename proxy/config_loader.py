"""Read proxy.yaml once, at the edge, into frozen ``Settings``.

Contract: ``load_settings(path, env)`` returns Settings or raises ConfigError naming file, line
and key for every problem. Environment variables override paths (and, later, secrets):
``CLAMSHELL_DATA_DIR``, ``CLAMSHELL_RULES_DIR``, ``CLAMSHELL_PUBLIC_URL``. Relative paths are
resolved against the config file's folder so the proxy behaves the same from any cwd.
Not here: the schema (core/settings.py), vendor rules (rules_loader.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from proxy.core.settings import Library, Settings
from proxy.errors import ConfigError, Problem
from proxy.rules_loader import validation_problems
from proxy.yamlsource import load_yaml, read_limited

ENV_OVERRIDES: Mapping[str, str] = {  # environment variable -> top-level key
    "CLAMSHELL_DATA_DIR": "data_dir",
    "CLAMSHELL_RULES_DIR": "rules_dir",
    "CLAMSHELL_PUBLIC_URL": "public_url",
}
PATH_KEYS = ("data_dir", "rules_dir")


def load_settings(path: Path | str, env: Mapping[str, str] | None = None) -> Settings:
    """Load, override from the environment, validate and resolve paths."""
    path = Path(path)
    try:
        text = read_limited(path)
    except FileNotFoundError:
        raise ConfigError(
            [
                Problem(
                    str(path),
                    None,
                    "",
                    "config file not found (copy proxy.yaml from the repository, or pass --config)",
                )
            ]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), None, "", f"cannot read: {exc}")]) from None
    data, lines = load_yaml(text, str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([Problem(str(path), 1, "", "proxy.yaml must be a YAML mapping")])
    return settings_from(data, where=str(path), base=path.parent, env=env, lines=lines)


def settings_from(
    data: dict[str, Any],
    *,
    where: str,
    base: Path,
    env: Mapping[str, str] | None = None,
    lines: Mapping[Any, int] | None = None,
) -> Settings:
    """Validate plain data into Settings (also used for the demo's embedded defaults)."""
    data = dict(data)
    for var, key in ENV_OVERRIDES.items():
        if env and env.get(var):
            data[key] = env[var]
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, where, dict(lines or {}))) from None
    resolved: dict[str, Any] = {k: str((base / getattr(settings, k)).resolve()) for k in PATH_KEYS}
    if settings.upstream_ca:
        resolved["upstream_ca"] = str((base / settings.upstream_ca).resolve())
    if settings.pages.dir:
        resolved["pages"] = settings.pages.model_copy(
            update={"dir": str((base / settings.pages.dir).resolve())}
        )
    if settings.tls is not None:
        resolved["tls"] = settings.tls.model_copy(
            update={
                "cert": str((base / settings.tls.cert).resolve()),
                "key": str((base / settings.tls.key).resolve()),
            }
        )
    resolved["libraries"] = tuple(with_auth_paths(lib, base) for lib in settings.libraries)
    return settings.model_copy(update=resolved)


def with_auth_paths(library: Library, base: Path) -> Library:
    """#16: a library whose back-end secret and CA files are resolved against ``base``."""
    auth = library.auth
    updates: dict[str, Any] = {}
    for name in ("sip2", "ldap"):
        section = getattr(auth, name)
        if section is not None:
            files = {
                key: (base / value).resolve()
                for key, value in section
                if key.endswith("_file") and value is not None
            }
            updates[name] = section.model_copy(update=files)
    return (
        library.model_copy(update={"auth": auth.model_copy(update=updates)}) if updates else library
    )
