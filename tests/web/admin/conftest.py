"""The console fixtures of test_app.py, shared with the other admin test modules."""

from tests.web.admin.test_app import console, make_console  # noqa: F401 — pytest fixtures
