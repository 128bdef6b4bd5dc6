"""The simulated provider: scenarios, limits, an ASGI app and a loopback server."""

from pooltui.sim.app import create_app
from pooltui.sim.scenario import Scenario, ScenarioError, builtin_names, load_scenario, scenario_from_dict
from pooltui.sim.server import SimServer

__all__ = ["Scenario", "ScenarioError", "SimServer", "builtin_names", "create_app", "load_scenario",
           "scenario_from_dict"]
