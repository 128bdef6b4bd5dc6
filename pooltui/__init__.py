"""pooltui: credential pools for LLM APIs with a rotation engine, a simulator and a live monitor."""

__version__ = "0.1.0"
