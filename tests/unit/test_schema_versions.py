"""A service's schema check: what a database lacks of the code's migrations decides
whether the service may serve it; migrations applied ahead of the code do not."""

from __future__ import annotations

from calendence.migrations import load_migrations, missing_versions


def test_a_database_lacking_a_shipped_migration_is_behind_by_exactly_that_one() -> None:
    assert missing_versions({1, 2, 3}, {1, 3}) == [2]


def test_a_never_migrated_database_lacks_every_shipped_migration_in_order() -> None:
    assert missing_versions({3, 1, 2}, set()) == [1, 2, 3]


def test_migrations_applied_ahead_of_the_code_do_not_hold_it_back() -> None:
    assert missing_versions({1, 2}, {1, 2, 7}) == []


def test_each_service_ships_its_migrations_numbered_from_one_in_order() -> None:
    for package in ("booking_service", "notify_service"):
        versions = [m.version for m in load_migrations(package)]
        assert versions[0] == 1, package
        assert versions == sorted(set(versions)), package
