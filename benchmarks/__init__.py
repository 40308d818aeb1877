"""Benchmarks: imagejobs against a bare aiohttp loop and the provider's official SDK.

Run ``python -m benchmarks`` (``--quick`` for a small run, ``--json FILE`` for the
figures). Every client variant runs in its own process against one fake server
in another, so each process's CPU time and peak memory are its own.
"""
