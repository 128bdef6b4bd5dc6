"""The Textual monitor. Imports textual; nothing below pooltui/tui/ may import this package."""

from pooltui.tui.app import PoolMonitorApp

__all__ = ["PoolMonitorApp"]
