"""C code generation: TIR kernels to plain C, and the static-arena model driver."""
