"""Tests of vendor review mode (proxy/review)."""
