// Gradient of 2-D max pooling in NHWC, threaded over images (OpenMP, the runtime oneDNN
// uses). Semantics follow tfjs's reference (cpu) kernel: padding taps are ignored, NaN never
// wins (`v > best`), and a window's gradient goes to its first maximum in row-major window
// order. (The forward pass stays on the wasm kernel: it is memory-bound and already fast
// there, and a parallel region only adds risk of stalls on a busy machine.)
#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels.h"

namespace ibrar {

void maxPoolBackward(const PoolDims& d, const float* x, const float* dy, float* dx) {
  const int C = d.c;
  const long imgSize = static_cast<long>(d.ih) * d.iw * C;
  // Windows that tile the input exactly (the usual 2x2 stride-2 pooling on even sizes) touch
  // every pixel once, so dx needs no zeroing pass and no accumulation.
  const bool tiles = d.kh == d.sh && d.kw == d.sw && d.pt == 0 && d.pl == 0 && d.oh * d.kh == d.ih && d.ow * d.kw == d.iw;
#pragma omp parallel if (d.n * imgSize >= (1L << 15))
  {
    // Per channel: the window's running maximum and its offset in the image (-1: none yet).
    std::vector<float> bestBuf(C);
    std::vector<int> whereBuf(C);
    float* __restrict best = bestBuf.data();
    int* __restrict where = whereBuf.data();
#pragma omp for schedule(static)
    for (long n = 0; n < d.n; ++n) {
      const float* __restrict img = x + n * imgSize;
      float* __restrict grad = dx + n * imgSize;
      if (!tiles) std::fill(grad, grad + imgSize, 0.0f);
      for (int oy = 0; oy < d.oh; ++oy) {
        const int y0 = std::max(0, oy * d.sh - d.pt), y1 = std::min(d.ih, oy * d.sh - d.pt + d.kh);
        for (int ox = 0; ox < d.ow; ++ox) {
          const int x0 = std::max(0, ox * d.sw - d.pl), x1 = std::min(d.iw, ox * d.sw - d.pl + d.kw);
          for (int c = 0; c < C; ++c) {
            best[c] = -std::numeric_limits<float>::infinity();
            where[c] = -1;
          }
          for (int iy = y0; iy < y1; ++iy)
            for (int ix = x0; ix < x1; ++ix) {
              const int base = (iy * d.iw + ix) * C;
              const float* __restrict px = img + base;
              // Branch-free select so the loop vectorises; strict '>' keeps the first maximum.
              for (int c = 0; c < C; ++c) {
                const float v = px[c];
                const int take = -static_cast<int>(v > best[c]);  // all ones where v wins
                best[c] = v > best[c] ? v : best[c];
                where[c] = (where[c] & ~take) | ((base + c) & take);
              }
            }
          const float* __restrict g = dy + ((n * d.oh + oy) * static_cast<long>(d.ow) + ox) * C;
          if (tiles) {
            // This window alone covers its pixels: write them all, the maximum gets dy.
            for (int iy = y0; iy < y1; ++iy)
              for (int ix = x0; ix < x1; ++ix) {
                const int base = (iy * d.iw + ix) * C;
                float* __restrict out = grad + base;
                for (int c = 0; c < C; ++c) {
                  const int hit = -static_cast<int>(where[c] == base + c);  // all ones at the maximum
                  int bits;
                  std::memcpy(&bits, g + c, sizeof bits);
                  bits &= hit;
                  std::memcpy(out + c, &bits, sizeof bits);
                }
              }
          } else {
            for (int c = 0; c < C; ++c)
              if (where[c] >= 0) grad[where[c]] += g[c];
          }
        }
      }
    }
  }
}

}  // namespace ibrar
