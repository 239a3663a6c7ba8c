"""The base of every frozen configuration value.

Contract: ``Frozen`` is a pydantic model that is immutable, forbids unknown keys (a typo must
never be silently ignored) and strips surrounding whitespace from strings. It lives apart from
settings.py so that the back-end settings (core/sip2.py, core/authconfig.py) and the main
settings can both build on it without importing each other.
Not here: any concrete setting.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Base for every config value: immutable, and unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)
