"""``python -m pooltui.bench NAME ...``."""

from pooltui.bench.cli import main

main()
