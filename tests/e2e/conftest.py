"""End-to-end fixtures: the same real stack as the web tests."""

from tests.web.conftest import make_stack, stack

__all__ = ["make_stack", "stack"]
