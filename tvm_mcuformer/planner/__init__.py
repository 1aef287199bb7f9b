"""Static arena planning: liveness of arena tensors and offset assignment."""

from .inplace import InplacePair, inplace_pairs
from .liveness import Interval, live_intervals, liveness_lower_bound
from .plan import ALGORITHMS, ArenaPlan, plan_arena

__all__ = [
    "ALGORITHMS",
    "ArenaPlan",
    "InplacePair",
    "Interval",
    "inplace_pairs",
    "live_intervals",
    "liveness_lower_bound",
    "plan_arena",
]
