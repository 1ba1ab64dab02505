"""single: every role on one box."""
import pytest

from stack_checks import LayoutSuite

# Debian 12 (LTS): the formulas choose their versions per release.
pytestmark = pytest.mark.layout("single", release="bookworm")


class TestSingle(LayoutSuite):
    pass
