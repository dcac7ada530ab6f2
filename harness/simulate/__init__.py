"""Offline simulation of a population through a matcher, in-process (docs/simulate.md)."""
from .engine import SimResult, simulate
from .matcher import DEFAULT_MATCHER, make_matcher

__all__ = ["DEFAULT_MATCHER", "SimResult", "make_matcher", "simulate"]
