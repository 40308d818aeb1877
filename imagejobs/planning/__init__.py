"""The decisions, pure: the request budget and its 429 rate law, backoff, poll cadence,
sweep planning, retry and poll policies, and the duration history.

Nothing here awaits, sends or reads a clock: each function takes the time it needs.
"""
