"""tvm-mcuformer: Vision Transformers on microcontrollers, as an Apache TVM plugin.

Importing the package registers the ``mcuformer`` Relax pipeline::

    import tvm, tvm_mcuformer
    tvm.compile(mod, "llvm", relax_pipeline="mcuformer")
    tvm.compile(mod, "llvm", relax_pipeline=tvm.relax.pipeline.get_pipeline(
        "mcuformer", quantize="int8", calibration=samples, token_overwrite=False))
"""

from .lowering import register as _register_pipeline

_register_pipeline()

__version__ = "0.1.0"
