"""Deploy compiled models onto Cortex-M microcontrollers (QEMU boards, Zephyr boards).

Pipeline: :func:`create_project` unpacks a model artifact (``.tar``: metadata.json plus the
model's C) into a project with the firmware core and one platform; :func:`build_project`
builds ``build/firmware.elf`` and the host reference ``build/host_runner``;
:func:`flash_project` boots the image and checks it answers; :func:`evaluate` streams inputs
through device and host and reports accuracy, memory and latency.

Every failure the user can act on raises :class:`MicroError` (a ``RuntimeError``) saying
what went wrong, where, and what to do. Its ``exit_status`` tells the command line whose
failure it is: 2 (the default) for bad input, 1 for :class:`ToolError` (a failed build, a
missing tool) and for device errors (``transport.DeviceError``, ``protocol.ProtocolError``).
"""


class MicroError(RuntimeError):
    """A user-facing failure of the micro stage: by default, bad input (exit status 2)."""

    exit_status = 2


class ToolError(MicroError):
    """A tool failed or is missing (compiler, make, west, QEMU): exit status 1."""

    exit_status = 1


from tvm_mcuformer.micro.build import build_project, flash_project  # noqa: E402
from tvm_mcuformer.micro.evaluate import evaluate  # noqa: E402
from tvm_mcuformer.micro.project import create_project  # noqa: E402

__all__ = [
    "MicroError",
    "ToolError",
    "build_project",
    "create_project",
    "evaluate",
    "flash_project",
]
