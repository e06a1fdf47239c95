// Batch normalisation over the channel (last) axis of a [rows, C] view of NHWC activations,
// with an optional ReLU fused after it, forward and backward. In tfjs's plain ops the
// training forward and its gradient are ~15 full-size single-threaded wasm passes (the
// mean, the variance, x·a + b and each of their gradients); here they are 2 passes each, on
// all cores. Statistics accumulate in double per thread, so they do not drift with rows.
//
//   forward   y = [relu] ((x − μ)·s·γ + β),  s = 1/√(σ² + ε)
//             training: μ, σ² (biased) are the batch's and are written out; eval: read in
//   backward  g = dy masked by y > 0 when the ReLU is fused
//             dβ = Σ g,  dγ = Σ g·x̂  (x̂ = (x − μ)·s)
//             training: dx = γ·s/n · (n·g − dβ − x̂·dγ)    eval: dx = γ·s·g
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels.h"

namespace ibrar {
namespace {

constexpr long kParallelMin = 1L << 15;

int threadsFor(long rows, long cols) {
  if (rows * cols < kParallelMin) return 1;
  return std::max(1, std::min<int>(omp_get_max_threads(), static_cast<int>(rows)));
}

// Two per-channel sums over rows, in double: `body(r0, r1, accA, accB)` adds rows [r0, r1) into
// one thread's accumulators (each `cols` long); the threads' partial sums are then added up.
template <typename Body>
void channelSums(long rows, long cols, Body body, std::vector<double>& sa, std::vector<double>& sb) {
  const int threads = threadsFor(rows, cols);
  std::vector<double> partial(static_cast<size_t>(threads) * cols * 2, 0.0);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int nt = omp_get_num_threads();
    double* accA = partial.data() + static_cast<size_t>(t) * cols * 2;
    body(rows * t / nt, rows * (t + 1) / nt, accA, accA + cols);
  }
  sa.assign(cols, 0.0);
  sb.assign(cols, 0.0);
  for (int t = 0; t < threads; ++t) {
    const double* accA = partial.data() + static_cast<size_t>(t) * cols * 2;
    for (long c = 0; c < cols; ++c) {
      sa[c] += accA[c];
      sb[c] += accA[cols + c];
    }
  }
}

}  // namespace

void batchNormForward(const BatchNormDims& d, const float* x, const float* gamma, const float* beta, float* mean, float* var, float* y) {
  const long rows = d.rows, C = d.channels;
  if (d.training) {
    std::vector<double> s1, s2;  // Σ x, Σ x²
    channelSums(
        rows, C,
        [&](long r0, long r1, double* sx, double* sxx) {
          for (long r = r0; r < r1; ++r)
            for (long c = 0; c < C; ++c) {
              const double v = x[r * C + c];
              sx[c] += v;
              sxx[c] += v * v;
            }
        },
        s1, s2);
    for (long c = 0; c < C; ++c) {
      const double m = s1[c] / rows;
      mean[c] = static_cast<float>(m);
      var[c] = static_cast<float>(std::max(0.0, s2[c] / rows - m * m));
    }
  }
  // y = x·a + b with a = γ·s, b = β − μ·a.
  std::vector<float> a(C), b(C);
  for (long c = 0; c < C; ++c) {
    const double s = 1.0 / std::sqrt(static_cast<double>(var[c]) + d.eps);
    a[c] = static_cast<float>(gamma[c] * s);
    b[c] = static_cast<float>(beta[c] - mean[c] * (gamma[c] * s));
  }
  const float* A = a.data();
  const float* B = b.data();
  const bool relu = d.relu != 0;
#pragma omp parallel for schedule(static) num_threads(threadsFor(rows, C))
  for (long r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    if (relu) {
#pragma omp simd
      for (long c = 0; c < C; ++c) yr[c] = std::max(0.0f, xr[c] * A[c] + B[c]);
    } else {
#pragma omp simd
      for (long c = 0; c < C; ++c) yr[c] = xr[c] * A[c] + B[c];
    }
  }
}

void addChannelBias(const float* x, long rows, long channels, const float* bias, float* y) {
#pragma omp parallel for schedule(static) num_threads(threadsFor(rows, channels))
  for (long r = 0; r < rows; ++r) {
    const float* xr = x + r * channels;
    float* yr = y + r * channels;
#pragma omp simd
    for (long c = 0; c < channels; ++c) yr[c] = xr[c] + bias[c];
  }
}

void batchNormBackward(const BatchNormDims& d, const float* dy, const float* x, const float* y, const float* gamma, const float* mean,
                       const float* var, float* dx, float* dgamma, float* dbeta) {
  const long rows = d.rows, C = d.channels;
  const bool relu = d.relu != 0;
  std::vector<double> s(C);
  for (long c = 0; c < C; ++c) s[c] = 1.0 / std::sqrt(static_cast<double>(var[c]) + d.eps);

  const bool needSums = d.training || dgamma != nullptr || dbeta != nullptr;
  std::vector<double> sumG(C, 0.0), sumGx(C, 0.0);  // Σ g, Σ g·(x − μ)
  if (needSums) {
    channelSums(
        rows, C,
        [&](long r0, long r1, double* accG, double* accGx) {
          // Rows are summed in float blocks of kBlock, then added to the double accumulators:
          // vectorisable, and the float error stays at the size of a block.
          constexpr long kBlock = 16;
          std::vector<float> bG(C), bGx(C);
          float* BG = bG.data();
          float* BGx = bGx.data();
          for (long rb = r0; rb < r1; rb += kBlock) {
            const long re = std::min(r1, rb + kBlock);
            std::fill(bG.begin(), bG.end(), 0.0f);
            std::fill(bGx.begin(), bGx.end(), 0.0f);
            for (long r = rb; r < re; ++r) {
              const float* dyr = dy + r * C;
              const float* xr = x + r * C;
              if (relu) {
                const float* yr = y + r * C;
#pragma omp simd
                for (long c = 0; c < C; ++c) {
                  const float d = dyr[c];  // loaded unconditionally so the select vectorises
                  const float gv = yr[c] > 0.0f ? d : 0.0f;
                  BG[c] += gv;
                  BGx[c] += gv * (xr[c] - mean[c]);
                }
              } else {
#pragma omp simd
                for (long c = 0; c < C; ++c) {
                  BG[c] += dyr[c];
                  BGx[c] += dyr[c] * (xr[c] - mean[c]);
                }
              }
            }
            for (long c = 0; c < C; ++c) {
              accG[c] += BG[c];
              accGx[c] += BGx[c];
            }
          }
        },
        sumG, sumGx);
  }
  // Σ g·x̂ = s·Σ g·(x − μ); centring first avoids cancellation when |μ| ≫ σ.
  std::vector<double> sumGxh(C, 0.0);
  if (needSums)
    for (long c = 0; c < C; ++c) sumGxh[c] = s[c] * sumGx[c];
  if (dbeta)
    for (long c = 0; c < C; ++c) dbeta[c] = static_cast<float>(sumG[c]);
  if (dgamma)
    for (long c = 0; c < C; ++c) dgamma[c] = static_cast<float>(sumGxh[c]);
  if (!dx) return;

  // dx = k·g + p·x + q per channel:
  //   training: k = γs, p = −γs·s·dγ/n, q = −γs/n·dβ − p·μ;   eval: k = γs, p = q = 0.
  std::vector<float> k(C), p(C), q(C);
  for (long c = 0; c < C; ++c) {
    const double gs = gamma[c] * s[c];
    k[c] = static_cast<float>(gs);
    if (d.training) {
      const double pc = -gs * s[c] * sumGxh[c] / rows;
      p[c] = static_cast<float>(pc);
      q[c] = static_cast<float>(-gs * sumG[c] / rows - pc * mean[c]);
    } else {
      p[c] = 0.0f;
      q[c] = 0.0f;
    }
  }
  const float* K = k.data();
  const float* P = p.data();
  const float* Q = q.data();
  const bool training = d.training != 0;
#pragma omp parallel for schedule(static) num_threads(threadsFor(rows, C))
  for (long r = 0; r < rows; ++r) {
    const float* dyr = dy + r * C;
    const float* xr = x + r * C;
    const float* yr = relu ? y + r * C : nullptr;
    float* dxr = dx + r * C;
    // Separate loops so each is a branch-free vector loop (the ReLU mask as a select).
    if (relu && training) {
#pragma omp simd
      for (long c = 0; c < C; ++c) {
        const float d = dyr[c];
        dxr[c] = K[c] * (yr[c] > 0.0f ? d : 0.0f) + P[c] * xr[c] + Q[c];
      }
    } else if (relu) {
#pragma omp simd
      for (long c = 0; c < C; ++c) {
        const float d = dyr[c];
        dxr[c] = K[c] * (yr[c] > 0.0f ? d : 0.0f);
      }
    } else if (training) {
#pragma omp simd
      for (long c = 0; c < C; ++c) dxr[c] = K[c] * dyr[c] + P[c] * xr[c] + Q[c];
    } else {
#pragma omp simd
      for (long c = 0; c < C; ++c) dxr[c] = K[c] * dyr[c];
    }
  }
}

}  // namespace ibrar
