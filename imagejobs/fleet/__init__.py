"""What the processes of one account share through Redis: the budget and the looks.

The only package that imports redis (an extra: ``imagejobs[redis]``).
"""
