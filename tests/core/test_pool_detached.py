"""A key removed, disabled or given a new secret while a request it served is in flight: settling that
request (report, transport failure, release, stream open/close, late usage) raises nothing and changes
nothing in the pool (fake clock)."""

from __future__ import annotations

import pytest

from pooltui.core import Classification, DeadlineSource, FakeClock, KeySpec, KeyState, Outcome, Pool

OK = Classification(Outcome.OK, 200)
SECRETS = [f"sk-test-detached-{i:024d}" for i in range(3)]


def make(strategy: str = "round-robin") -> Pool:
    return Pool("p", [KeySpec(f"k{i}", SECRETS[i]) for i in range(3)], strategy, clock=FakeClock())


def rl(retry: float = 5.0) -> Classification:
    return Classification(Outcome.RATE_LIMITED, 429, "rate limited", retry, DeadlineSource.RETRY_AFTER)


def outcomes() -> list[Classification]:
    return [OK, rl(), Classification(Outcome.INVALID, 401, "invalid key"),
            Classification(Outcome.QUOTA, 429, "quota spent"), Classification(Outcome.TRANSIENT, 529, "overloaded")]


def pool_view(p: Pool) -> tuple:
    """What a settle must not change: keys, states, counters, usability, the next pick, the events."""
    return ([(k.label, k.state, k.inflight, k.streams, k.stats.requests, k.stats.ok, k.stats.rate_limited,
              k.stats.tokens_in) for k in p.keys], p.usable(), p.peek(), p.next_ready_in(), len(p.events))


@pytest.mark.parametrize("result", outcomes(), ids=lambda r: r.outcome.value)
def test_a_removed_keys_late_answer_settles_quietly(result: Classification) -> None:
    p = make()
    gone = p.pick()
    assert gone.label == "k0"
    p.stream_opened(gone)
    p.remove_key("k0")
    before = pool_view(p)
    p.report(gone, result, 0.4, 10, 5, 7, 0.01, "m")
    p.report_transport(gone, "ReadError", 0.4, 7, "m")
    p.release(gone, "m", 0.4)
    p.stream_closed(gone)
    p.add_usage(gone, 3, 4, 0.02)
    assert pool_view(p) == before
    assert gone.inflight == 0


def test_a_new_secret_behind_the_same_label_is_not_touched_by_the_old_ones_answer() -> None:
    p = make()
    old = p.pick()
    p.remove_key("k0")
    new = p.add_key(KeySpec("k0", "sk-test-detached-new-0000000000001"))
    p.set_order(["k0", "k1", "k2"])
    p.report(old, rl(30.0), 0.2)
    p.release(old)
    p.add_usage(old, 100, 100)
    assert p.key("k0") is new and new.state is KeyState.OK
    assert (new.stats.requests, new.stats.rate_limited, new.stats.tokens_in, new.inflight) == (0, 0, 0, 0)
    assert p.usable() == 3


def test_a_disabled_keys_late_answer_is_counted_and_it_stays_disabled() -> None:
    p = make()
    key = p.pick()
    p.disable("k0", reason="disabled in config")
    p.report(key, rl())
    assert key.state is KeyState.DISABLED and key.stats.rate_limited == 1 and key.inflight == 0


def test_a_key_removed_while_its_recovery_probe_is_in_flight_no_longer_counts_as_usable() -> None:
    p = make("failover")
    p.report(p.pick(), rl(5.0))
    p.clock.advance(5.0)
    probe = p.pick()  # k0 back from its cooldown: this request is its probe
    assert probe.label == "k0" and p.usable() == 3
    p.remove_key("k0")
    assert p.usable() == 2
    p.report(probe, OK)
    assert p.usable() == 2 and p.next_ready_in() is None


def test_a_key_that_never_was_in_the_pool_is_still_refused_by_name() -> None:
    stranger = make().key("k1")
    with pytest.raises(ValueError, match=r"^key 'k1' is not a key of pool 'p'$"):
        make().release(stranger)
