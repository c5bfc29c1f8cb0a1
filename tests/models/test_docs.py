import doctest
import inspect

import pytest

import shiftkit.models as models
from shiftkit.models import classifier, layers, norms, zoo


@pytest.mark.parametrize("module", [zoo, layers, norms, classifier], ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_every_public_name_has_a_docstring():
    for module in (models, zoo, layers, norms, classifier):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert inspect.getdoc(obj), f"{module.__name__}.{name}"
