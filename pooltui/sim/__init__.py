"""The simulated provider: scenarios, limits, an ASGI app and a loopback server.

Its names load on first use (PEP 562): a CLI command that only reads a scenario's bounds does not pay for the
ASGI app and the server (Starlette and uvicorn), which every `pooltui` start did."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pooltui.sim.app import create_app
    from pooltui.sim.scenario import Scenario, ScenarioError, builtin_names, load_scenario, scenario_from_dict
    from pooltui.sim.server import SimServer

__all__ = ["Scenario", "ScenarioError", "SimServer", "builtin_names", "create_app", "load_scenario",
           "scenario_from_dict"]

_HOME = {"create_app": "app", "SimServer": "server", "Scenario": "scenario", "ScenarioError": "scenario",
         "builtin_names": "scenario", "load_scenario": "scenario", "scenario_from_dict": "scenario"}


def __getattr__(name: str) -> object:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
