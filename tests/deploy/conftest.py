from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.chart import Object, render, values_cases

CASES = values_cases()


@pytest.fixture(params=CASES, ids=[name for name, _ in CASES])
def case(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """(name, values) for the defaults and every ci/*-values.yaml."""
    name: str = request.param[0]
    values: dict[str, Any] = request.param[1]
    return name, values


@pytest.fixture
def objects(case: tuple[str, dict[str, Any]]) -> list[Object]:
    """What the chart renders for each case."""
    return render(case[1])
