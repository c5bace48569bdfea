"""Command groups of the ``wind`` CLI.

Each module here defines ``register(subparsers)`` which adds one top-level
command (``wind keys``, ``wind node``, ...) and sets ``func`` on its parsers.
Modules are discovered, so adding a command group touches no other file.
"""
