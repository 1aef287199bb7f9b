/* Portable expf/erff/tanhf: see mcuformer_math.h. Max error: expf ~2 ulp,
 * erff 1.5e-7 absolute (Abramowitz & Stegun 7.1.26), tanhf ~3 ulp. */
#include <stdint.h>
#include <string.h>

#include "mcuformer_math.h"

#undef expf
#undef erff
#undef tanhf
#undef sqrtf

static float pow2i(int32_t k) {
  uint32_t bits = (uint32_t)(k + 127) << 23;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

float mcuformer_expf(float x) {
  if (x != x) return x;
  if (x > 88.72283f) return HUGE_VALF;
  if (x < -103.97208f) return 0.0f;
  float kf = x * 1.44269504f;
  int32_t k = (int32_t)(kf + (kf >= 0.0f ? 0.5f : -0.5f));
  float r = x - (float)k * 0.693145751953125f;
  r = r - (float)k * 1.428606765330187e-06f;
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.16666667f + r * (0.041666668f +
            r * (0.008333334f + r * 0.0013888889f)))));
  if (k > 127) return p * pow2i(k - 1) * 2.0f;
  if (k < -126) return p * pow2i(k + 100) * pow2i(-100);
  return p * pow2i(k);
}

float mcuformer_erff(float x) {
  float s = x < 0.0f ? -1.0f : 1.0f;
  float a = x < 0.0f ? -x : x;
  float t = 1.0f / (1.0f + 0.3275911f * a);
  float y = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f +
            t * (-1.453152027f + t * 1.061405429f))));
  return s * (1.0f - y * mcuformer_expf(-a * a));
}

float mcuformer_tanhf(float x) {
  float a = x < 0.0f ? -x : x;
  if (a < 1e-4f) return x;
  float r = 1.0f - 2.0f / (mcuformer_expf(2.0f * a) + 1.0f);
  return x < 0.0f ? -r : r;
}

float mcuformer_sqrtf(float x) { return sqrtf(x); }
