"""One module pass per PrimFunc schedule: apply it to every PrimFunc not yet marked done."""

from __future__ import annotations

from collections.abc import Callable

import tvm
from tvm import tirx

Schedule = Callable[[tirx.PrimFunc], tirx.PrimFunc | None]


def primfunc_pass(schedule: Schedule, name: str, done_attr: str) -> tvm.transform.Pass:
    """A module pass named ``name`` that replaces every PrimFunc without the attribute
    ``done_attr`` by ``schedule(func)`` (left as it is when that returns ``None``)."""

    @tvm.transform.module_pass(opt_level=0, name=name)
    def apply(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        updated = {}
        for gv, func in mod.functions.items():
            if not isinstance(func, tirx.PrimFunc) or (func.attrs and done_attr in func.attrs):
                continue
            scheduled = schedule(func)
            if scheduled is not None:
                updated[gv] = scheduled
        for gv, func in updated.items():
            mod[gv] = func
        return mod

    return apply
