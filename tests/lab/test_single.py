"""single: every role on one box."""
import pytest

from stack_checks import LayoutSuite

pytestmark = pytest.mark.layout("single")


class TestSingle(LayoutSuite):
    pass
