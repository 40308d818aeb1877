"""The service's language, pure: models, the wire codec, signing, errors, transitions.

Values in, values out: nothing here does I/O, reads a clock or imports asyncio.
"""
