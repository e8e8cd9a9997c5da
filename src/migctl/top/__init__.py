"""``migctl top``: a live, keyboard-driven terminal view of a MIG node.

:mod:`.view` holds the state and what keys do, :mod:`.screen` draws a frame as text lines of a
fixed size, :mod:`.terminal` reads keys, :mod:`.app` runs the loop. Keys and layout are in
``docs/observability.md``.
"""
