"""What every command does first: load proxy.yaml at the edge and set up logging.

Contract: ``configured(args)`` loads the settings from ``--config`` (with the documented
``CLAMSHELL_*`` environment overrides, read here and only here) and configures logging
(``--log-format`` or the config's ``log_format``); ``settings_of(args)`` only loads them, for
commands whose output is the point (``certs``, ``admin-token``). A ``ConfigError`` propagates
to ``proxy.cli.main``, which prints its problems.
Not here: the commands themselves (their own modules in this package).
"""

from __future__ import annotations

import argparse
import os

from proxy.config_loader import load_settings
from proxy.core.settings import Settings
from proxy.logconfig import configure_logging


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings of ``--config`` and the environment, logging untouched."""
    return load_settings(args.config, os.environ)


def configured(args: argparse.Namespace) -> Settings:
    """The settings of ``--config``, with logging configured from them."""
    settings = settings_of(args)
    configure_logging(args.log_format or settings.log_format)
    return settings
