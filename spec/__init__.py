"""The environment spec: typed sections, cross-field rules, and a loader that reports every problem."""

from .errors import Problem, SpecError
from .load import load_spec
from .models import PlatformSpec

__all__ = ["PlatformSpec", "Problem", "SpecError", "load_spec"]
