// Element-wise maximum / minimum of two equal-length float32 arrays, NaN-propagating (as
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

}  // namespace ibrar
