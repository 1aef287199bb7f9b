/* Dual-MAC int8 micro-kernels for the scheduled matmul kernels.
 *
 * The TIR schedules (tvm_mcuformer/schedules/dense.py) tensorize the inner
 * 1 x C x 4 block of an int8 matmul into calls of mcuformer_dot_1xC_4: C int32
 * accumulators each gain the dot product of four consecutive int8 activations
 * with four consecutive int8 weights of one output channel (weights stored
 * N x K, so both are one 32-bit load).
 *
 * On cores with the DSP extension (Cortex-M4/M7: __ARM_FEATURE_DSP) the two
 * primitives are ACLE's __sxtb16 and __smlad (<arm_acle.h>): one SXTB16 splits
 * bytes 0 and 2 (or, after a rotation by 8, bytes 1 and 3) into two int16
 * lanes and one SMLAD adds both lane products to the accumulator. Everywhere
 * else (the host build, cores without DSP) the same two functions are portable
 * C with the same semantics, modular 32-bit accumulation included, so the
 * host and the device compute identical integers.
 */
#ifndef MCUFORMER_SIMD_H_
#define MCUFORMER_SIMD_H_

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define MCUFORMER_ACLE 1
static inline int32_t mcuformer_sxtb16(int32_t x) { return __sxtb16(x); }
static inline int32_t mcuformer_smlad(int32_t x, int32_t y, int32_t acc) {
  return __smlad(x, y, acc);
}
#else
#define MCUFORMER_ACLE 0
/* SXTB16: sign-extend bytes 0 and 2 of x into the low and high int16 lanes. */
static inline int32_t mcuformer_sxtb16(int32_t x) {
  uint32_t u = (uint32_t)x;
  uint32_t lo = (uint32_t)(uint16_t)(int16_t)(int8_t)(u & 0xffu);
  uint32_t hi = (uint32_t)(uint16_t)(int16_t)(int8_t)((u >> 16) & 0xffu);
  return (int32_t)(lo | (hi << 16));
}
/* SMLAD: acc + x.lo * y.lo + x.hi * y.hi (int16 lanes), modulo 2^32. */
static inline int32_t mcuformer_smlad(int32_t x, int32_t y, int32_t acc) {
  int32_t p0 = (int32_t)(int16_t)(uint32_t)x * (int32_t)(int16_t)(uint32_t)y;
  int32_t p1 = (int32_t)(int16_t)((uint32_t)x >> 16) * (int32_t)(int16_t)((uint32_t)y >> 16);
  return (int32_t)((uint32_t)acc + (uint32_t)p0 + (uint32_t)p1);
}
#endif

/* SXTB16 of x rotated right by 8: bytes 1 and 3 into the two int16 lanes. */
static inline int32_t mcuformer_sxtb16_ror8(int32_t x) {
#if MCUFORMER_ACLE
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
#else
  uint32_t u = (uint32_t)x;
  return mcuformer_sxtb16((int32_t)((u >> 8) | (u << 24)));
#endif
}

/* Four int8 at p (any alignment) as one little-endian word. */
static inline int32_t mcuformer_load4(const int8_t* p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* s + sum_{k<4} a[k] * w[k], with a given as its two SXTB16 halves. */
static inline int32_t mcuformer_dot4(int32_t s, int32_t a02, int32_t a13, const int8_t* w) {
  int32_t wv = mcuformer_load4(w);
  s = mcuformer_smlad(a02, mcuformer_sxtb16(wv), s);
  return mcuformer_smlad(a13, mcuformer_sxtb16_ror8(wv), s);
}

/* mcuformer_dot_1xC_4(acc, a, w, w_stride, acc_stride), C in {1, 2, 4} (pointers not const:
 * the signature TVM declares for the call_extern):
 * acc[j * acc_stride] += sum_{k<4} a[k] * w[j * w_stride + k] for j < C. */
#define MCUFORMER_DOT_HEAD(C)                                                                \
  static inline void mcuformer_dot_1x##C##_4(int32_t* acc, int8_t* a, int8_t* w,             \
                                              int32_t w_stride, int32_t acc_stride) {        \
    int32_t av = mcuformer_load4(a);                                                       \
    int32_t a02 = mcuformer_sxtb16(av);                                                    \
    int32_t a13 = mcuformer_sxtb16_ror8(av);
#define MCUFORMER_DOT_COL(J) \
  acc[(J) * acc_stride] = mcuformer_dot4(acc[(J) * acc_stride], a02, a13, w + (J) * w_stride);

MCUFORMER_DOT_HEAD(1)
MCUFORMER_DOT_COL(0)
}
MCUFORMER_DOT_HEAD(2)
MCUFORMER_DOT_COL(0)
MCUFORMER_DOT_COL(1)
}
MCUFORMER_DOT_HEAD(4)
MCUFORMER_DOT_COL(0)
MCUFORMER_DOT_COL(1)
MCUFORMER_DOT_COL(2)
MCUFORMER_DOT_COL(3)
}
#undef MCUFORMER_DOT_HEAD
#undef MCUFORMER_DOT_COL

#endif /* MCUFORMER_SIMD_H_ */
