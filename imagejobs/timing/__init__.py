"""Time and admission, in asyncio: the clock seam, alarms, and the gate over the budget."""
