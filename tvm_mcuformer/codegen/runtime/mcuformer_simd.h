/* Dual-MAC int8 micro-kernels for the scheduled matmul kernels.
 *
 * The TIR schedules (tvm_mcuformer/schedules/dense.py, attention.py) tensorize the inner
 * R x C x 4 block of an int8 matmul into calls of mcuformer_dot_RxC_4 (R = 1 or 2): int32
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

/* x clamped to [-128, 127] as int8: one SSAT #8 on cores with the DSP extension. The
 * lowering (tvm_mcuformer/lowering/kernels.py) calls it for every int32 -> int8 clamp. */
static inline int8_t mcuformer_ssat8(int32_t x) {
#if MCUFORMER_ACLE
  return (int8_t)__ssat(x, 8);
#else
  return (int8_t)(x < -128 ? -128 : (x > 127 ? 127 : x));
#endif
}

/* Leading zero bits of x != 0 (one CLZ instruction on Cortex-M; TVM's C target has no
 * lowering of T.clz, so the lowering calls this). */
static inline int32_t mcuformer_clz(int32_t x) { return __builtin_clz((uint32_t)x); }

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

/* mcuformer_dot_1xC_4(acc, a, w, w_stride, acc_stride), C in {1, 2} (pointers not const:
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

/* mcuformer_dot_2xC_4(acc0, acc1, a0, a1, w, w_stride, acc_stride), C in {1, 2}: the 2 x C
 * tile of two activation rows a0, a1 with their accumulators acc0, acc1:
 * accr[j * acc_stride] += sum_{k<4} ar[k] * w[j * w_stride + k] for r < 2, j < C.
 * Each weight word is loaded and split once for both rows. */
static inline void mcuformer_dot2(int32_t* s0, int32_t* s1, int32_t a02, int32_t a13, int32_t b02,
                                  int32_t b13, const int8_t* w) {
  int32_t wv = mcuformer_load4(w);
  int32_t w02 = mcuformer_sxtb16(wv);
  int32_t w13 = mcuformer_sxtb16_ror8(wv);
  *s0 = mcuformer_smlad(a13, w13, mcuformer_smlad(a02, w02, *s0));
  *s1 = mcuformer_smlad(b13, w13, mcuformer_smlad(b02, w02, *s1));
}
#define MCUFORMER_DOT2_HEAD(C)                                                                \
  static inline void mcuformer_dot_2x##C##_4(int32_t* acc0, int32_t* acc1, int8_t* a0,     \
                                              int8_t* a1, int8_t* w, int32_t w_stride,          \
                                              int32_t acc_stride) {                             \
    int32_t av = mcuformer_load4(a0);                                                         \
    int32_t bv = mcuformer_load4(a1);                                                         \
    int32_t a02 = mcuformer_sxtb16(av);                                                       \
    int32_t a13 = mcuformer_sxtb16_ror8(av);                                                  \
    int32_t b02 = mcuformer_sxtb16(bv);                                                       \
    int32_t b13 = mcuformer_sxtb16_ror8(bv);
#define MCUFORMER_DOT2_COL(J)                                                              \
  mcuformer_dot2(&acc0[(J) * acc_stride], &acc1[(J) * acc_stride], a02, a13, b02, b13,       \
                 w + (J) * w_stride);

MCUFORMER_DOT2_HEAD(1)
MCUFORMER_DOT2_COL(0)
}
MCUFORMER_DOT2_HEAD(2)
MCUFORMER_DOT2_COL(0)
MCUFORMER_DOT2_COL(1)
}

/* The _8 to _64 variants: two steps of half the K each (less loop overhead). */
#define MCUFORMER_DOT_2STEP(C, K, H)                                                         \
  static inline void mcuformer_dot_1x##C##_##K(int32_t* acc, int8_t* a, int8_t* w,           \
                                                int32_t w_stride, int32_t acc_stride) {      \
    mcuformer_dot_1x##C##_##H(acc, a, w, w_stride, acc_stride);                              \
    mcuformer_dot_1x##C##_##H(acc, a + (H), w + (H), w_stride, acc_stride);                  \
  }                                                                                          \
  static inline void mcuformer_dot_2x##C##_##K(int32_t* acc0, int32_t* acc1, int8_t* a0,     \
                                                int8_t* a1, int8_t* w, int32_t w_stride,     \
                                                int32_t acc_stride) {                        \
    mcuformer_dot_2x##C##_##H(acc0, acc1, a0, a1, w, w_stride, acc_stride);                  \
    mcuformer_dot_2x##C##_##H(acc0, acc1, a0 + (H), a1 + (H), w + (H), w_stride, acc_stride); \
  }
MCUFORMER_DOT_2STEP(1, 8, 4)
MCUFORMER_DOT_2STEP(2, 8, 4)
MCUFORMER_DOT_2STEP(1, 16, 8)
MCUFORMER_DOT_2STEP(2, 16, 8)
MCUFORMER_DOT_2STEP(1, 32, 16)
MCUFORMER_DOT_2STEP(1, 64, 32)

/* mcuformer_qk_row(scores, q, k, k_stride, n, dim): scores[j] = sum_{c<dim} q[c] * k[j * k_stride + c]
 * for j < n: one query row against n keys, dim <= 64 bytes of one head (q and each key row
 * contiguous; dim a compile-time constant at every call, so the loops unroll). The query
 * row is split into int16 lanes once (SXTB16), not once per key, so each key costs its
 * word loads, their SXTB16 and one SMLAD per two products; dim mod 4 bytes are scalar. */
static inline void mcuformer_qk_row(int32_t* scores, int8_t* q, int8_t* k, int32_t k_stride,
                                    int32_t n, int32_t dim) {
  int32_t q02[16], q13[16];
  _Pragma("GCC unroll 16") for (int c = 0; c < dim / 4; ++c) {
    int32_t v = mcuformer_load4(q + 4 * c);
    q02[c] = mcuformer_sxtb16(v);
    q13[c] = mcuformer_sxtb16_ror8(v);
  }
  for (int32_t j = 0; j < n; ++j, k += k_stride) {
    int32_t acc = 0;
    _Pragma("GCC unroll 16") for (int c = 0; c < dim / 4; ++c) {
      int32_t w = mcuformer_load4(k + 4 * c);
      acc = mcuformer_smlad(q02[c], mcuformer_sxtb16(w), acc);
      acc = mcuformer_smlad(q13[c], mcuformer_sxtb16_ror8(w), acc);
    }
    _Pragma("GCC unroll 4") for (int c = dim - dim % 4; c < dim; ++c) acc += q[c] * k[c];
    scores[j] = acc;
  }
}

/* Halfword packing: (lo16(x), lo16(y)) and (hi16(x), hi16(y)) as two int16 lanes
 * (PKHBT / PKHTB on cores with the DSP extension). */
static inline int32_t mcuformer_pack_lo(int32_t x, int32_t y) {
#if MCUFORMER_ACLE
  int32_t r;
  __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(x), "r"(y));
  return r;
#else
  return (int32_t)(((uint32_t)x & 0xffffu) | ((uint32_t)y << 16));
#endif
}
static inline int32_t mcuformer_pack_hi(int32_t x, int32_t y) {
#if MCUFORMER_ACLE
  int32_t r;
  __asm__("pkhtb %0, %2, %1, asr #16" : "=r"(r) : "r"(x), "r"(y));
  return r;
#else
  return (int32_t)(((uint32_t)x >> 16) | ((uint32_t)y & 0xffff0000u));
#endif
}

/* mcuformer_pv_4x4(acc, p, v0, v1, v2, v3): acc[d] += sum_{r<4} p[r] * vr[d] for d < 4:
 * four attention probabilities times the same four columns of four value rows (rows
 * given one pointer each: the value rows of consecutive keys are a row stride apart, and
 * a caller past the last key passes the last row again with a zero probability). The
 * rows are transposed in registers: SXTB16 splits each row's word into columns (0, 2)
 * and (1, 3), PKHBT/PKHTB pair key 0 with key 2 and key 1 with key 3, and one SMLAD
 * per pair and column adds two products. */
static inline int32_t mcuformer_pv_lo(int32_t acc, int32_t p02, int32_t p13, int32_t e0,
                                      int32_t e1, int32_t e2, int32_t e3) {
  acc = mcuformer_smlad(p02, mcuformer_pack_lo(e0, e2), acc); /* keys 0 and 2, low lanes */
  return mcuformer_smlad(p13, mcuformer_pack_lo(e1, e3), acc); /* keys 1 and 3 */
}
static inline int32_t mcuformer_pv_hi(int32_t acc, int32_t p02, int32_t p13, int32_t e0,
                                      int32_t e1, int32_t e2, int32_t e3) {
  acc = mcuformer_smlad(p02, mcuformer_pack_hi(e0, e2), acc); /* the high lanes */
  return mcuformer_smlad(p13, mcuformer_pack_hi(e1, e3), acc);
}
static inline void mcuformer_pv_4x4(int32_t* acc, int8_t* p, int8_t* v0, int8_t* v1, int8_t* v2,
                                    int8_t* v3) {
  int32_t pv = mcuformer_load4(p);
  int32_t p02 = mcuformer_sxtb16(pv);      /* (p0, p2) */
  int32_t p13 = mcuformer_sxtb16_ror8(pv); /* (p1, p3) */
  int32_t r0 = mcuformer_load4(v0), r1 = mcuformer_load4(v1);
  int32_t r2 = mcuformer_load4(v2), r3 = mcuformer_load4(v3);
  int32_t e0 = mcuformer_sxtb16(r0), e1 = mcuformer_sxtb16(r1); /* columns 0, 2 */
  int32_t e2 = mcuformer_sxtb16(r2), e3 = mcuformer_sxtb16(r3);
  acc[0] = mcuformer_pv_lo(acc[0], p02, p13, e0, e1, e2, e3);
  acc[2] = mcuformer_pv_hi(acc[2], p02, p13, e0, e1, e2, e3);
  int32_t o0 = mcuformer_sxtb16_ror8(r0), o1 = mcuformer_sxtb16_ror8(r1); /* columns 1, 3 */
  int32_t o2 = mcuformer_sxtb16_ror8(r2), o3 = mcuformer_sxtb16_ror8(r3);
  acc[1] = mcuformer_pv_lo(acc[1], p02, p13, o0, o1, o2, o3);
  acc[3] = mcuformer_pv_hi(acc[3], p02, p13, o0, o1, o2, o3);
}

/* mcuformer_pv_4x2(acc, p, v0, v1, v2, v3): mcuformer_pv_4x4 for two value columns (a head
 * dimension that is not a multiple of 4): each row's two bytes are one halfword load. */
static inline int32_t mcuformer_load2(const int8_t* p) {
  int16_t v;
  memcpy(&v, p, 2);
  return (int32_t)(uint16_t)v;
}
static inline void mcuformer_pv_4x2(int32_t* acc, int8_t* p, int8_t* v0, int8_t* v1, int8_t* v2,
                                    int8_t* v3) {
  int32_t pv = mcuformer_load4(p);
  int32_t p02 = mcuformer_sxtb16(pv), p13 = mcuformer_sxtb16_ror8(pv);
  int32_t r0 = mcuformer_load2(v0), r1 = mcuformer_load2(v1);
  int32_t r2 = mcuformer_load2(v2), r3 = mcuformer_load2(v3);
  acc[0] = mcuformer_pv_lo(acc[0], p02, p13, mcuformer_sxtb16(r0), mcuformer_sxtb16(r1),
                           mcuformer_sxtb16(r2), mcuformer_sxtb16(r3)); /* column 0 */
  acc[1] = mcuformer_pv_lo(acc[1], p02, p13, mcuformer_sxtb16_ror8(r0), mcuformer_sxtb16_ror8(r1),
                           mcuformer_sxtb16_ror8(r2), mcuformer_sxtb16_ror8(r3)); /* column 1 */
}

#undef MCUFORMER_DOT_2STEP
#undef MCUFORMER_DOT_HEAD
#undef MCUFORMER_DOT_COL
#undef MCUFORMER_DOT2_HEAD
#undef MCUFORMER_DOT2_COL

#endif /* MCUFORMER_SIMD_H_ */
