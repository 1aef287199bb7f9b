/* Deterministic single-precision math for generated kernels.
 *
 * The host build and the device build of a model must produce bit-identical
 * outputs. glibc and newlib implement expf/erff differently, so kernels call
 * these portable versions instead (IEEE float arithmetic only, no contraction:
 * build with -ffp-contract=off). sqrtf is IEEE correctly rounded everywhere.
 */
#ifndef MCUFORMER_MATH_H_
#define MCUFORMER_MATH_H_

#include <math.h>

float mcuformer_expf(float x);
float mcuformer_erff(float x);
float mcuformer_tanhf(float x);
float mcuformer_sqrtf(float x);

#define expf mcuformer_expf
#define erff mcuformer_erff
#define tanhf mcuformer_tanhf
#define sqrtf mcuformer_sqrtf

#endif /* MCUFORMER_MATH_H_ */
