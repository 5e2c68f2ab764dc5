"""The plugin tests/ci_skips.py: under CI=true a skip fails the run; elsewhere skips are listed."""

import pytest
import torch

import ci_skips

DOCTORED = """
import pytest

def test_runs():
    pass

def test_needs_data():
    pytest.skip("MNIST mirror not found")

@pytest.mark.skipif(True, reason="no browser")
def test_needs_browser():
    pass

@pytest.mark.xfail(reason="a known bug", run=False)
def test_known_bug():
    pass

@pytest.mark.cuda
@pytest.mark.skipif(True, reason="no CUDA GPU")
def test_needs_a_gpu():
    pass
"""


def run_doctored(pytester: pytest.Pytester, monkeypatch, ci: str) -> pytest.RunResult:
    pytester.makeini("[pytest]\nmarkers =\n    cuda: needs a CUDA GPU\n")
    pytester.makepyfile(DOCTORED)
    monkeypatch.setenv("CI", ci)
    return pytester.runpytest_inprocess("-rs", plugins=[ci_skips])


def test_a_skipped_test_fails_the_run_under_ci(pytester, monkeypatch):
    result = run_doctored(pytester, monkeypatch, "true")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # A skip in the test body fails it, one from a mark fails its setup (an error). The expected failure stays
    # one, and a cuda test may skip only where PyTorch sees no GPU.
    cuda_test = {"errors": 2} if torch.cuda.is_available() else {"errors": 1, "skipped": 1}
    result.assert_outcomes(passed=1, failed=1, xfailed=1, **cuda_test)
    for reason in ("MNIST mirror not found", "no browser"):
        result.stdout.fnmatch_lines([f"skipped under CI=true, where nothing may skip: {reason}"])


def test_elsewhere_skips_pass_and_are_listed_with_their_reasons(pytester, monkeypatch):
    result = run_doctored(pytester, monkeypatch, "false")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, skipped=3, xfailed=1)
    result.stdout.fnmatch_lines(["*short test summary info*", "SKIPPED * MNIST mirror not found",
                                 "SKIPPED * no browser", "SKIPPED * no CUDA GPU"], consecutive=False)
