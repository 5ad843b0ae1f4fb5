import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Lake  # noqa: E402


@pytest.fixture
def lake():
    """A fresh running lake per test."""
    lk = Lake()
    lk.start()
    yield lk
    try:
        rc = lk.stop()
        assert rc == 0, "tarn serve exited with %s on SIGTERM:\n%s" % (rc, lk.read_log())
    finally:
        lk.cleanup()


@pytest.fixture(scope="module")
def shared_lake():
    """One running lake shared by a test module (faster for read-mostly tests)."""
    lk = Lake()
    lk.start()
    yield lk
    lk.stop()
    lk.cleanup()
