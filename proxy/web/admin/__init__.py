"""The admin console: its own aiohttp app on its own loopback listener (``app.py``).

Contract: a package of modules, no re-exports; import from the defining module.
``app.py`` builds the app and binds it; ``auth.py`` holds the token and the console sessions;
``api.py``/``models.py``/``views.py``/``openapi.py`` are the JSON API; ``dashboard.py`` and
``pages.py`` the HTML pages. Not here: the patron-facing app (proxy/web/app.py).
"""
