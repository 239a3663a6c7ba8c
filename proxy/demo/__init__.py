"""The demo vendors: a fake multi-host "database vendor" web app for `run_proxy.py demo` and tests.

See `proxy.demo.vendor` for the app and its contract.
"""
