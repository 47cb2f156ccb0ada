"""The slot rules as pure functions: fast, no servers. Time off, closures, the booking
policy, and (property-based) that availability and holds agree with each other and
with a plain instant-by-instant reading of the schedule, across clock changes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from calendence.errors import InvalidInput
from calendence.schemas.scheduling import DEFAULT_POLICY, effective_policy
from hold_service.catalogue_cache import (
    BusinessCatalogue,
    Location,
    Policy,
    Service,
    StaffMember,
    Week,
    policy_of,
)
from hold_service.slots import (
    bookable_plans,
    candidate_starts,
    check_slot,
    overlaps,
    policy_errors,
    resolve_offer,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.scheduling_oracle import (
    Schedule,
    free_staff,
    location_allows,
    schedules,
)

ALL_DAY: Week = tuple(((0, 1440),) for _ in range(7))
NINE_TO_FIVE: Week = tuple(((540, 1020),) for _ in range(7))
NOW = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)  # a Monday
TEN = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)
DEFAULT_RULES = Policy()
Built = tuple[BusinessCatalogue, UUID, UUID, list[UUID]]


def catalogue(
    *,
    hours: Week = NINE_TO_FIVE,
    closures: tuple[tuple[datetime, datetime], ...] = (),
    staff: tuple[tuple[Week | None, tuple[tuple[datetime, datetime], ...]], ...] = (),
    policy: Policy = DEFAULT_RULES,
    duration: int = 30,
    buffer: int = 0,
    zone: str = "UTC",
    staff_ids: tuple[UUID, ...] | None = None,
) -> Built:
    location = Location(uuid4(), zone, hours, closures)
    service = Service(uuid4(), duration, buffer, True, frozenset({location.id}), policy)
    ids = list(staff_ids or [uuid4() for _ in staff])
    members = {
        member: StaffMember(member, frozenset({service.id}), frozenset({location.id}), h, away)
        for member, (h, away) in zip(ids, staff, strict=True)
    }
    return (
        BusinessCatalogue({location.id: location}, {service.id: service}, members),
        service.id,
        location.id,
        ids,
    )


def hold_check(
    built: Built,
    starts_at: datetime,
    staff_id: UUID | None = None,
    now: datetime = NOW,
) -> list[UUID | None]:
    """The staff a hold at `starts_at` may claim; InvalidInput when it may not be held."""
    cat, service_id, location_id, _ = built
    plan = check_slot(
        cat,
        service_id=service_id,
        location_id=location_id,
        staff_id=staff_id,
        starts_at=starts_at,
        now=now,
    )
    return [member for _, member in plan.candidates]


# --- spans ----------------------------------------------------------------------------


def test_spans_that_touch_do_not_overlap() -> None:
    spans = ((TEN, TEN + timedelta(hours=1)),)
    assert not overlaps(spans, TEN - timedelta(minutes=30), TEN)
    assert not overlaps(spans, TEN + timedelta(hours=1), TEN + timedelta(hours=2))
    assert overlaps(spans, TEN - timedelta(minutes=5), TEN + timedelta(minutes=5))


# --- policy ---------------------------------------------------------------------------


def test_a_start_exactly_at_the_minimum_notice_is_allowed() -> None:
    policy = Policy(min_notice_minutes=120)
    assert policy_errors(policy, NOW + timedelta(minutes=120), NOW) == {}
    errors = policy_errors(policy, NOW + timedelta(minutes=115), NOW)
    assert "min_notice_minutes" in errors["starts_at"]


def test_a_start_exactly_at_the_maximum_advance_is_allowed() -> None:
    policy = Policy(max_advance_days=2)
    assert policy_errors(policy, NOW + timedelta(days=2), NOW) == {}
    errors = policy_errors(policy, NOW + timedelta(days=2, minutes=5), NOW)
    assert "max_advance_days" in errors["starts_at"]


def test_a_services_rules_override_the_business_and_nulls_follow_it() -> None:
    business = DEFAULT_POLICY | {"min_notice_minutes": 120, "slot_step_minutes": 30}
    service = {"min_notice_minutes": 0, "slot_step_minutes": None}
    assert effective_policy(business, service) == business | {"min_notice_minutes": 0}
    assert policy_of(business, service) == Policy(0, 365, 30)


def test_an_empty_business_policy_means_the_defaults() -> None:
    assert effective_policy({}, None) == DEFAULT_POLICY


def test_the_slot_step_spaces_the_candidates() -> None:
    cat, service_id, location_id, _ = catalogue(policy=Policy(slot_step_minutes=40))
    offer = resolve_offer(cat, service_id=service_id, location_id=location_id, staff_id=None)
    starts = candidate_starts(offer, TEN - timedelta(hours=1), TEN + timedelta(hours=2))
    assert [s.strftime("%H:%M") for s in starts] == ["09:00", "09:40", "10:20", "11:00", "11:40"]


def test_holds_inside_the_notice_are_refused_and_not_offered() -> None:
    built = catalogue(policy=Policy(min_notice_minutes=150))
    with pytest.raises(InvalidInput) as refused:
        hold_check(built, TEN)
    assert "min_notice_minutes" in refused.value.fields["starts_at"]
    cat, service_id, location_id, _ = built
    offer = resolve_offer(cat, service_id=service_id, location_id=location_id, staff_id=None)
    plans = bookable_plans(offer, NOW, NOW + timedelta(hours=4), NOW)
    assert plans[0].starts_at == NOW + timedelta(minutes=150)


# --- closures and time off --------------------------------------------------------------


def test_a_closure_refuses_holds_that_overlap_it_and_only_those() -> None:
    built = catalogue(closures=((TEN, TEN + timedelta(hours=1)),))
    with pytest.raises(InvalidInput) as refused:
        hold_check(built, TEN + timedelta(minutes=45))
    assert "closed" in refused.value.fields["starts_at"]
    with pytest.raises(InvalidInput):
        hold_check(built, TEN - timedelta(minutes=25))
    assert hold_check(built, TEN - timedelta(minutes=30)) == [None]
    assert hold_check(built, TEN + timedelta(hours=1)) == [None]


def test_staff_on_time_off_are_left_out_of_the_candidates() -> None:
    away = ((TEN, TEN + timedelta(hours=1)),)
    built = catalogue(staff=((None, away), (None, ())))
    _, _, _, (off, working) = built
    assert hold_check(built, TEN) == [working]
    assert hold_check(built, TEN + timedelta(hours=1)) == [off, working]


def test_asking_for_a_staff_member_on_time_off_names_why() -> None:
    built = catalogue(staff=((None, ((TEN, TEN + timedelta(hours=1)),)),))
    member = built[3][0]
    with pytest.raises(InvalidInput) as refused:
        hold_check(built, TEN, staff_id=member)
    assert refused.value.fields["starts_at"] == "the staff member is off then"


def test_with_everyone_away_the_slot_is_refused() -> None:
    away = ((TEN, TEN + timedelta(hours=1)),)
    built = catalogue(staff=((None, away), (None, away)))
    with pytest.raises(InvalidInput) as refused:
        hold_check(built, TEN)
    assert refused.value.fields["starts_at"] == "no staff member works then"


def test_asking_for_a_staff_member_outside_their_hours_names_why() -> None:
    mornings: Week = tuple(((540, 720),) for _ in range(7))
    built = catalogue(staff=((mornings, ()),))
    with pytest.raises(InvalidInput) as refused:
        hold_check(built, datetime(2030, 1, 7, 13, 0, tzinfo=UTC), staff_id=built[3][0])
    assert refused.value.fields["starts_at"] == "outside the staff member's hours"


def test_a_slot_running_past_closing_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        hold_check(catalogue(), datetime(2030, 1, 7, 16, 45, tzinfo=UTC))
    assert refused.value.fields["starts_at"] == "outside the location's opening hours"


def test_a_business_without_staff_claims_the_service_at_the_location() -> None:
    assert hold_check(catalogue(), TEN) == [None]


# --- ids: which service, location and staff member --------------------------------------


def test_unknown_ids_are_each_named_by_their_field() -> None:
    cat, *_ = catalogue()
    with pytest.raises(InvalidInput) as refused:
        resolve_offer(cat, service_id=uuid4(), location_id=uuid4(), staff_id=uuid4())
    assert refused.value.fields == {
        "service_id": "no such service",
        "location_id": "no such location",
        "staff_id": "no such staff member",
    }


def test_an_inactive_service_cannot_be_held() -> None:
    cat, service_id, location_id, _ = catalogue()
    cat.services[service_id] = replace(cat.services[service_id], active=False)
    with pytest.raises(InvalidInput) as refused:
        resolve_offer(cat, service_id=service_id, location_id=location_id, staff_id=None)
    assert refused.value.fields == {"service_id": "the service is not active"}


def test_a_service_is_held_only_where_it_is_offered() -> None:
    cat, service_id, _, _ = catalogue()
    elsewhere = Location(uuid4(), "UTC", NINE_TO_FIVE)
    cat.locations[elsewhere.id] = elsewhere
    with pytest.raises(InvalidInput) as refused:
        resolve_offer(cat, service_id=service_id, location_id=elsewhere.id, staff_id=None)
    assert refused.value.fields == {"location_id": "the service is not offered at this location"}


def test_a_staff_member_who_does_not_perform_the_service_cannot_be_chosen() -> None:
    cat, service_id, location_id, _ = catalogue()
    stranger = StaffMember(uuid4(), frozenset(), frozenset({location_id}), None)
    cat.staff[stranger.id] = stranger
    with pytest.raises(InvalidInput) as refused:
        resolve_offer(cat, service_id=service_id, location_id=location_id, staff_id=stranger.id)
    assert refused.value.fields == {
        "staff_id": "this staff member does not perform the service at this location"
    }


def test_without_a_chosen_member_every_qualified_one_is_a_candidate() -> None:
    built = catalogue(staff=((None, ()), (None, ())))
    cat, service_id, location_id, members = built
    outsider = StaffMember(uuid4(), frozenset(), frozenset({location_id}), None)
    cat.staff[outsider.id] = outsider
    offer = resolve_offer(cat, service_id=service_id, location_id=location_id, staff_id=None)
    assert sorted(m.id for m in offer.staff) == sorted(members)


def test_a_bad_start_and_a_bad_id_are_reported_together() -> None:
    cat, _, location_id, _ = catalogue()
    with pytest.raises(InvalidInput) as refused:
        check_slot(
            cat,
            service_id=uuid4(),
            location_id=location_id,
            staff_id=None,
            starts_at=NOW - timedelta(hours=1),
            now=NOW,
        )
    assert refused.value.fields == {
        "service_id": "no such service",
        "starts_at": "must be in the future",
    }


# --- property: availability, holds and the schedule agree ---------------------------------

FIRST_DAY = datetime(2030, 1, 1, tzinfo=UTC).date()


def built_from(schedule: Schedule, policy: Policy) -> Built:
    return catalogue(
        hours=schedule.location_hours,
        closures=schedule.closures,
        staff=schedule.staff,
        policy=policy,
        duration=schedule.duration_minutes,
        buffer=schedule.buffer_minutes,
        zone=schedule.zone.key,
        staff_ids=schedule.staff_ids or None,
    )


def accepted(
    built: Built,
    start: datetime,
    now: datetime,
    staff_id: UUID | None = None,
) -> list[UUID | None] | None:
    try:
        return hold_check(built, start, staff_id, now)
    except InvalidInput:
        return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    schedule=schedules(first_day=FIRST_DAY),
    notice=st.sampled_from([0, 30, 600]),
    advance_hours=st.integers(1, 24 * 20),
    now_before=st.integers(0, 36),
)
def test_listed_times_are_exactly_those_a_hold_accepts_and_the_schedule_allows(
    schedule: Schedule, notice: int, advance_hours: int, now_before: int
) -> None:
    now = schedule.window_start + timedelta(hours=12 - now_before)
    advance_days = max(1, advance_hours // 24)
    # Step 5: every granule is a candidate, so "omitted" means "refused".
    policy = Policy(notice, advance_days, 5)
    built = built_from(schedule, policy)
    cat, service_id, location_id, staff_ids = built
    choices: list[UUID | None] = [None, *staff_ids[:1]]
    for chosen in choices:
        offer = resolve_offer(cat, service_id=service_id, location_id=location_id, staff_id=chosen)
        listed = {
            plan.starts_at: [m for _, m in plan.candidates]
            for plan in bookable_plans(offer, schedule.window_start, schedule.window_end, now)
        }
        for start in schedule.granules():
            verdict = accepted(built, start, now, chosen)
            assert listed.get(start) == verdict, (start, chosen)
            in_policy = (
                start > now
                and start >= now + timedelta(minutes=notice)
                and start <= now + timedelta(days=advance_days)
            )
            expected_staff: list[UUID | None]
            if not staff_ids:
                expected_staff = [None]
            elif chosen is None:
                expected_staff = list(free_staff(schedule, start))
            else:
                expected_staff = [m for m in free_staff(schedule, start) if m == chosen]
            allowed = in_policy and location_allows(schedule, start) and bool(expected_staff)
            assert (verdict is not None) == allowed, (start, chosen, verdict)
            if verdict is not None:
                assert verdict == expected_staff
