"""Deploy compiled models onto Cortex-M microcontrollers (QEMU boards, Zephyr boards).

Pipeline: :func:`create_project` unpacks a model artifact (``.tar``: metadata.json plus the
model's C) into a project with the firmware core and one platform; :func:`build_project`
builds ``build/firmware.elf`` and the host reference ``build/host_runner``;
:func:`flash_project` boots the image and checks it answers; :func:`evaluate` streams inputs
through device and host and reports accuracy, memory and latency.

Every failure the user can act on raises :class:`MicroError` (a ``RuntimeError``) saying
what went wrong, where, and what to do.
"""


class MicroError(RuntimeError):
    """A user-facing failure of the micro stage (bad input, failed build, device error)."""


from tvm_mcuformer.micro.build import build_project, flash_project  # noqa: E402
from tvm_mcuformer.micro.evaluate import evaluate  # noqa: E402
from tvm_mcuformer.micro.project import create_project  # noqa: E402

__all__ = ["MicroError", "build_project", "create_project", "evaluate", "flash_project"]
