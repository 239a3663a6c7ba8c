#!/usr/bin/env python3
"""Thin entry point: ``python run_proxy.py [--config proxy.yaml] COMMAND``."""

import sys

from proxy.cli import main

if __name__ == "__main__":
    sys.exit(main())
