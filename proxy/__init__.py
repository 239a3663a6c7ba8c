"""clamshell: a privacy-first authenticating reverse proxy for library consortia.

The import package is ``proxy`` (fixed by the product card). The pure core lives in
``proxy.core``; everything that touches sockets, files or YAML is the shell around it.
"""

__version__ = "0.1.0"
