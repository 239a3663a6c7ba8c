"""The aiohttp shell: portal, relay and admin listeners adapt requests to the pure core."""
