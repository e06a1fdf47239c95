// Float64 m×m matrix product for the HSIC estimators' host algebra (matMul64 below), and
// element-wise maximum / minimum of two equal-length float32 arrays, NaN-propagating (as
// torch.maximum and tfjs's cpu backend). The projections of every L∞ attack step call them
// on whole image batches; tfjs-wasm's kernels take ~7 ms per 614k values there.
#include <omp.h>

#include <cmath>

#include "kernels.h"

namespace ibrar {

void maxMin(const float* a, const float* b, long n, bool max, float* out) {
  const bool parallel = n >= (1L << 16);
  if (max) {
#pragma omp parallel for simd schedule(static) if (parallel)
    for (long i = 0; i < n; ++i) {
      const float u = a[i], v = b[i];
      out[i] = (u > v || u != u) ? u : v;
    }
  } else {
#pragma omp parallel for simd schedule(static) if (parallel)
    for (long i = 0; i < n; ++i) {
      const float u = a[i], v = b[i];
      out[i] = (u < v || u != u) ? u : v;
    }
  }
}

void matMul64(const double* a, const double* b, long m, double* out) {
  // Row i of out accumulates a[i][k]·b[k][:] for k ascending: per element the same operations
  // in the same order as the JS fallback (ib/linalg64.ts), so results are bit-identical
  // (no FMA contraction: the build does not target FMA).
#pragma omp parallel for schedule(static) if (m >= 48)
  for (long i = 0; i < m; ++i) {
    double* o = out + i * m;
    for (long j = 0; j < m; ++j) o[j] = 0.0;
    for (long k = 0; k < m; ++k) {
      const double aik = a[i * m + k];
      if (aik == 0.0) continue;
      const double* bk = b + k * m;
      for (long j = 0; j < m; ++j) o[j] += aik * bk[j];
    }
  }
}

void sgdStep(const float* param, const float* grad, const float* buf, long n, float lr, float momentum, float weightDecay,
             bool started, float* paramOut, float* bufOut) {
  // The operations, roundings and order of optimizer.ts's tfjs ops (float32 throughout, no
  // FMA: the addon is built with -ffp-contract=off), so the result is bit-identical to them.
  const bool decay = weightDecay > 0.0f;
  const bool useMomentum = momentum > 0.0f;
#pragma omp parallel for simd schedule(static) if (n >= (1L << 16))
  for (long i = 0; i < n; ++i) {
    const float p = param[i];
    float g = grad[i];
    if (decay) g = g + p * weightDecay;
    if (useMomentum) {
      if (started) g = buf[i] * momentum + g;
      bufOut[i] = g;
    }
    paramOut[i] = p - g * lr;
  }
}

}  // namespace ibrar
