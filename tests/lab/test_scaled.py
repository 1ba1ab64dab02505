"""scaled: 2 load balancers, 3 app hosts, 2 cache hosts, 2 media hosts, 1 database; FQDN minion ids."""
import pytest

from stack_checks import LayoutSuite

pytestmark = pytest.mark.layout("scaled")


class TestScaled(LayoutSuite):
    pass
