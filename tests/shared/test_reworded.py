"""Every event's words changed, the same behaviour (issue 25, item 1): behaviour tests of the consumers of events
(the shared store, the story, the incident, the status line and its alerts, the webhook) run again with each
event's reason and action spelt backwards. Here, beside tests/shared's Redis server; the whole suite can run so
too: ``pytest --reword-events``."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable

import pytest

from pooltui.core.events import reworded
from tests.conftest import backwards
from tests.incident import test_alerts, test_events_pane, test_status_alerts
from tests.incident.test_alerts import receiver  # noqa: F401 (a fixture of a behaviour below)
from tests.shared import test_fleet_state, test_shared_key_states

BEHAVIOUR: list[Callable[..., object]] = [
    test_shared_key_states.test_a_429_a_401_and_hand_actions_reach_the_other_process,
    test_fleet_state.test_an_outage_suspected_by_one_process_sends_the_others_to_the_fallback,
    test_events_pane.test_a_storm_reads_as_a_few_counting_rows_that_update_in_place,
    test_status_alerts.test_an_incident_counts_until_it_goes_quiet_then_the_history_keeps_it,
    test_status_alerts.test_an_outage_turns_the_line_red_with_the_fallback_named_and_rings_once_per_alert,
    test_alerts.test_an_outage_and_its_fallback_reach_the_webhook_and_the_command,
]


@pytest.mark.parametrize("behaviour", BEHAVIOUR, ids=lambda test: test.__name__.removeprefix("test_"))
def test_the_same_behaviour_in_other_words(behaviour: Callable[..., object], request: pytest.FixtureRequest) -> None:
    fixtures = {name: request.getfixturevalue(name) for name in inspect.signature(behaviour).parameters}
    with reworded(backwards):
        ran = behaviour(**fixtures)
        if inspect.iscoroutine(ran):
            asyncio.run(ran)
