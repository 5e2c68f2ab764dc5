"""A pytest plugin: under CI=true a skipped test fails the run, so a green CI never hides a test that did not run
(a missing dataset, browser or installed command). The one exception: tests marked `cuda` on a machine where
PyTorch sees no GPU; bench/gpu_check.sh runs them on one. Everywhere, `-rs` (pyproject.toml) lists what skipped."""

from __future__ import annotations

import os

import pytest


def skip_allowed(item: pytest.Item) -> bool:
    if item.get_closest_marker("cuda") is None:
        return False
    import torch

    return not torch.cuda.is_available()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.skipped and os.environ.get("CI") == "true" and not hasattr(report, "wasxfail") \
            and not skip_allowed(item):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where nothing may skip: {reason}"
    return report
