"""Static arena planning: buffer model → solver (registry) → verifier (always)."""

from .buffers import BufferModel
from .inplace import InplacePair, inplace_pairs
from .liveness import Interval, root_lifetimes
from .plan import ArenaPlan, algorithms, plan_arena, plan_buffers
from .solvers import SOLVERS, register_solver
from .verify import PlanError, verify_plan

ALGORITHMS = algorithms()

__all__ = [
    "ALGORITHMS",
    "SOLVERS",
    "ArenaPlan",
    "BufferModel",
    "InplacePair",
    "Interval",
    "PlanError",
    "algorithms",
    "inplace_pairs",
    "plan_arena",
    "plan_buffers",
    "register_solver",
    "root_lifetimes",
    "verify_plan",
]
