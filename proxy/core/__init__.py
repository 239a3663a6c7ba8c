"""The pure core: values in, values out. No aiohttp, yaml, mitmproxy, sockets or files."""
