"""How the suite is spread over pytest-xdist workers (tests/conftest.py): a module whose tests share an expensive
fixture must stay on one worker, or the fixture (a gateway process, a browser, a seeded ledger) is built again on
every worker that gets one of its tests."""

from __future__ import annotations

import pytest


def test_modules_with_a_shared_fixture_are_one_xdist_group(request: pytest.FixtureRequest) -> None:
    items = request.session.items
    by_module: dict[str, set[str | None]] = {}
    for item in items:
        mark = item.get_closest_marker("xdist_group")
        by_module.setdefault(item.path.name, set()).add(mark.args[0] if mark else None)
    # test_auth.py's keys and test_audit.py's seeded home are module-scoped; this module has none.
    for name in ("test_auth.py", "test_audit.py"):
        if name in by_module:
            assert by_module[name] == {f"tests/{name}"}, by_module[name]
    assert by_module["test_parallel.py"] == {None}
    if getattr(request.config.option, "loadgroup", False):  # set on xdist workers only
        # On a worker, xdist reads the marks into the test ids (after our hook, which must therefore run first);
        # `--dist loadgroup` sends tests with the same suffix to the same worker.
        grouped = [item.nodeid for item in items if item.get_closest_marker("xdist_group")]
        assert all("@tests/" in nodeid for nodeid in grouped), grouped[:3]
