"""Toy model artifacts for the micro stage's tests (test-only: the product ships no model).

:func:`make_artifact` writes a tar in the compiler's artifact layout whose C "model" is:

- input ``x``: float32 ``[1, 1, side, side]`` (default 4); output ``logits``: float32
  ``[1, N_OUT]``;
- ``x[0]`` is a spin count: on Arm an inline-asm loop ``subs; bne`` runs exactly
  ``2 * int(x[0])`` instructions (the instruction-counter calibration, in
  ``mcuformer_invoke``), a plain loop on the host;
- ``logits[j] = exp(-|s_j|) + sqrtf(|s_j|) + 0.25 * s_j`` with ``s_j`` a weighted sum of
  ``x[1:]`` computed through the static arena. Like the compiler, the model brings its own
  ``exp`` (glibc's and newlib's ``expf`` differ in the last bit); ``sqrtf`` is correctly
  rounded everywhere and makes the model link ``-lm``;
- ``x[0] == -7`` executes an undefined instruction in ``toy_trap`` (a CPU fault);
- optional ``stack_hog_bytes``: a local array of that size is touched on every run;
- optional ``flash_ballast_bytes``: a const array of that size (in flash) is read.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

N_OUT = 10

_HEADER = """\
#ifndef MCUFORMER_MODEL_H
#define MCUFORMER_MODEL_H
#include <stdint.h>
#define MCUFORMER_INPUT_BYTES {input_bytes}
#define MCUFORMER_OUTPUT_BYTES {output_bytes}
#define MCUFORMER_ARENA_BYTES {arena_bytes}
void* mcuformer_input(void);
void* mcuformer_output(void);
int32_t mcuformer_invoke(void);
int32_t mcuformer_run(const void* input, void* output);
#endif
"""

_MODEL = """\
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "mcuformer_model.h"

#define N_IN {n_in}
#define N_OUT {n_out}
#define STACK_HOG {stack_hog}
#define BALLAST {ballast}

uint8_t mcuformer_arena[MCUFORMER_ARENA_BYTES] __attribute__((aligned(16)));

static const float weights[N_OUT][N_IN] = {{{weights}}};

static void spin(uint32_t n) {{
#if defined(__arm__)
  if (n) __asm volatile("1: subs %0, %0, #1\\n\\tbne 1b" : "+r"(n) : : "cc");
#else
  for (volatile uint32_t i = 0; i < n; i++) {{
  }}
#endif
}}

/* exp(v) for v <= 0 with float arithmetic only, so every platform rounds the same. */
static float toy_exp(float v) {{
  if (v < -80.0f) return 0.0f;
  int k = (int)(v * 1.44269504f - 0.5f);
  float r = v - (float)k * 0.693147181f;
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666667f + r * (0.0416666667f +
                                                                   r * 0.00833333333f))));
  union {{
    uint32_t bits;
    float value;
  }} scale = {{(uint32_t)(k + 127) << 23}};
  return p * scale.value;
}}

#if BALLAST > 0
static const uint8_t ballast[BALLAST] = {{1, 2, 3}};
#define BALLAST_AT(v) ((float)ballast[(uint32_t)fabsf(v) % BALLAST])
#else
#define BALLAST_AT(v) 0.0f
#endif

#if STACK_HOG > 0
__attribute__((noinline)) static float hog(float seed) {{
  volatile float big[STACK_HOG / 4];
  for (uint32_t i = 0; i < STACK_HOG / 4; i++) big[i] = seed + (float)i;
  return big[STACK_HOG / 8];
}}
#else
static float hog(float seed) {{ return seed; }}
#endif

/* An undefined instruction: a precise fault whose PC the firmware must report. */
__attribute__((noinline, used)) static void toy_trap(void) {{ __builtin_trap(); }}

static float outputs[N_OUT] __attribute__((aligned(16)));

void* mcuformer_input(void) {{ return mcuformer_arena; }}

void* mcuformer_output(void) {{ return outputs; }}

int32_t mcuformer_run(const void* input, void* output) {{
  memcpy(mcuformer_input(), input, MCUFORMER_INPUT_BYTES);
  int32_t status = mcuformer_invoke();
  memcpy(output, mcuformer_output(), MCUFORMER_OUTPUT_BYTES);
  return status;
}}

int32_t mcuformer_invoke(void) {{
  float* x = (float*)mcuformer_arena;
  float* y = outputs;
  if (x[0] == -7.0f) toy_trap();
  spin(x[0] > 0.0f && x[0] < 4e9f ? (uint32_t)x[0] : 0u);
  for (int j = 0; j < N_OUT; j++) {{
    float s = 0.0f;
    for (int i = 1; i < N_IN; i++) s += weights[j][i] * x[i];
    y[j] = toy_exp(-fabsf(s)) + sqrtf(fabsf(s)) + 0.25f * s;
  }}
  y[0] = hog(y[0]) - (STACK_HOG > 0 ? (float)(STACK_HOG / 8) : 0.0f) + BALLAST_AT(x[1]);
  return 0;
}}
"""


def make_artifact(
    path: Path,
    *,
    side: int = 4,
    arena_bytes: int = 1024,
    stack_hog_bytes: int = 0,
    flash_ballast_bytes: int = 0,
    board: str | None = "mps2-an500",
) -> Path:
    """Write a toy model artifact to ``path`` and return it."""
    n_in = side * side
    weights = ", ".join(
        "{" + ", ".join(f"{((i * 7 + j * 13) % 17 - 8) / 16:.4f}f" for i in range(n_in)) + "}"
        for j in range(N_OUT)
    )
    metadata = {
        "inputs": [{"name": "x", "shape": [1, 1, side, side], "dtype": "float32"}],
        "outputs": [{"name": "logits", "shape": [1, N_OUT], "dtype": "float32"}],
        "memory": {
            "planned_arena_bytes": arena_bytes,
            "weight_bytes": n_in * N_OUT * 4,
            "budget": {"sram_bytes": 327680, "flash_bytes": 1048576},
        },
        "macs": n_in * N_OUT,
    }
    if board is not None:
        metadata["board"] = board
    files = {
        "metadata.json": json.dumps(metadata, indent=2),
        "codegen/host/include/mcuformer_model.h": _HEADER.format(
            input_bytes=n_in * 4, output_bytes=N_OUT * 4, arena_bytes=arena_bytes
        ),
        "codegen/host/src/model.c": _MODEL.format(
            n_in=n_in,
            n_out=N_OUT,
            stack_hog=stack_hog_bytes,
            ballast=flash_ballast_bytes,
            weights=weights,
        ),
    }
    write_tar(path, files)
    return path


def write_tar(path: Path, files: dict[str, str]) -> None:
    """Write ``files`` (name -> text) as a tar at ``path``."""
    with tarfile.open(path, "w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
