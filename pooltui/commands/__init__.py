"""The command line (click): cli.py is the entry point, one module per command group."""
