// Sums (and means) of a float32 tensor over a leading or a trailing block of axes, viewed as
// a [rows, cols] matrix. Batch norm reduces NHWC activations over N, H, W (leading axes),
// which tfjs's wasm backend does by transposing first. Accumulation is in double, so the
// result does not drift with the number of rows.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels.h"

namespace ibrar {
namespace {
// Below this many elements a parallel region costs more than it saves.
constexpr long kParallelMin = 1L << 15;
}  // namespace

// Σ of n floats: float partial sums over short blocks (vectorisable, 8 independent lanes),
// added into a double, so the error stays that of a 256-element float sum.
double sumFlat(const float* x, long n) {
  constexpr long kBlock = 256;
  double total = 0.0;
  long i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (long j = 0; j < kBlock; j += 8)
#pragma omp simd
      for (int k = 0; k < 8; ++k) lane[k] += x[i + j + k];
    double block = 0.0;
    for (int k = 0; k < 8; ++k) block += lane[k];
    total += block;
  }
  for (; i < n; ++i) total += x[i];
  return total;
}

void sumLeading(const float* x, long rows, long cols, float scale, float* out) {
  if (cols == 1) {
    // A full reduction (e.g. Σ g² over a weight matrix): one column makes the loop below a
    // serial chain of double additions, ~5 ns per element.
    double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total) if (rows >= kParallelMin)
    for (long chunk = 0; chunk < 64; ++chunk) total += sumFlat(x + rows * chunk / 64, rows * (chunk + 1) / 64 - rows * chunk / 64);
    out[0] = static_cast<float>(total * scale);
    return;
  }
  const int threads = rows * cols >= kParallelMin ? std::max(1, std::min<int>(omp_get_max_threads(), static_cast<int>(rows))) : 1;
  std::vector<double> partial(static_cast<size_t>(threads) * cols, 0.0);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int nt = omp_get_num_threads();
    const long r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
    double* acc = partial.data() + static_cast<size_t>(t) * cols;
    for (long r = r0; r < r1; ++r) {
      const float* row = x + r * cols;
      for (long c = 0; c < cols; ++c) acc[c] += row[c];
    }
  }
  for (long c = 0; c < cols; ++c) {
    double s = 0.0;
    for (int t = 0; t < threads; ++t) s += partial[static_cast<size_t>(t) * cols + c];
    out[c] = static_cast<float>(s * scale);
  }
}

void sumTrailing(const float* x, long rows, long cols, float scale, float* out) {
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (long r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    double s = 0.0;
    for (long c = 0; c < cols; ++c) s += row[c];
    out[r] = static_cast<float>(s * scale);
  }
}

}  // namespace ibrar
