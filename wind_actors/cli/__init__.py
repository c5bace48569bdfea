"""The ``wind`` command line: one module per command group under ``commands/``."""
