"""The request path: credentials, one transport seam, and the one aiohttp transport."""
