// 2-D convolution as GEMM over image patches (im2col), in tfjs layouts.
//
// Row r of the patch matrix is output pixel (n, oy, ox); column (fy*KW + fx)*IC + c is input
// channel c under filter tap (fy, fx), which is exactly the row order of an HWIO filter seen
// as a [KH*KW*IC, OC] matrix. So, with P the patch matrix of x:
//   forward          y  = P · W
//   backward-data    dx = col2im(dy · Wᵀ)     (scatter-add of patch rows back to pixels)
//   backward-weights dW = Pᵀ · dy
// Patches are built for a few whole images at a time so the buffer stays bounded; a 1x1,
// stride-1, unpadded convolution uses x itself as the patch matrix.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "gemm.h"
#include "kernels.h"

namespace ibrar {
namespace {

// Patch-buffer size per chunk of images; IBRAR_NATIVE_PATCH_BUDGET (bytes) overrides it so
// tests can force many chunks on small shapes.
size_t patchBudgetBytes() {
  static const size_t budget = [] {
    const char* e = std::getenv("IBRAR_NATIVE_PATCH_BUDGET");
    const long v = e ? std::atol(e) : 0;
    return v > 0 ? static_cast<size_t>(v) : static_cast<size_t>(16u << 20);
  }();
  return budget;
}

long patchCols(const ConvDims& d) { return static_cast<long>(d.kh) * d.kw * d.ic; }
long pixelsPerImage(const ConvDims& d) { return static_cast<long>(d.oh) * d.ow; }

bool isPointwise(const ConvDims& d) {
  return d.kh == 1 && d.kw == 1 && d.sh == 1 && d.sw == 1 && d.pt == 0 && d.pl == 0 && d.pb == 0 && d.pr == 0 &&
         d.oh == d.ih && d.ow == d.iw;
}

long imagesPerChunk(const ConvDims& d) {
  const size_t perImage = static_cast<size_t>(pixelsPerImage(d)) * patchCols(d) * sizeof(float);
  return std::max<long>(1, std::min<long>(d.n, static_cast<long>(patchBudgetBytes() / std::max<size_t>(perImage, 1))));
}

std::vector<float>& scratch(size_t n) {
  static std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf;
}

// Patch rows for images [img0, img1) into col.
void im2col(const ConvDims& d, const float* x, long img0, long img1, float* col) {
  const long K = patchCols(d);
  const long P = pixelsPerImage(d);
  const long rows = (img1 - img0) * P;
  const size_t icBytes = sizeof(float) * d.ic;
#pragma omp parallel for schedule(static)
  for (long r = 0; r < rows; ++r) {
    const long n = img0 + r / P;
    const int oy = static_cast<int>((r % P) / d.ow);
    const int ox = static_cast<int>((r % P) % d.ow);
    float* dst = col + r * K;
    for (int fy = 0; fy < d.kh; ++fy) {
      const int iy = oy * d.sh - d.pt + fy * d.dh;
      if (iy < 0 || iy >= d.ih) {
        std::memset(dst, 0, icBytes * d.kw);
        dst += static_cast<long>(d.kw) * d.ic;
        continue;
      }
      const float* rowIn = x + (n * d.ih + iy) * static_cast<long>(d.iw) * d.ic;
      for (int fx = 0; fx < d.kw; ++fx, dst += d.ic) {
        const int ix = ox * d.sw - d.pl + fx * d.dw;
        if (ix < 0 || ix >= d.iw) std::memset(dst, 0, icBytes);
        else std::memcpy(dst, rowIn + static_cast<long>(ix) * d.ic, icBytes);
      }
    }
  }
}

// Adds patch rows of images [img0, img1) back onto their pixels. Threads split by image,
// so no two threads write the same pixel.
void col2imAdd(const ConvDims& d, const float* col, long img0, long img1, float* dx) {
  const long K = patchCols(d);
  const long P = pixelsPerImage(d);
#pragma omp parallel for schedule(static)
  for (long n = img0; n < img1; ++n) {
    const float* src = col + (n - img0) * P * K;
    float* img = dx + n * static_cast<long>(d.ih) * d.iw * d.ic;
    for (int oy = 0; oy < d.oh; ++oy)
      for (int ox = 0; ox < d.ow; ++ox)
        for (int fy = 0; fy < d.kh; ++fy) {
          const int iy = oy * d.sh - d.pt + fy * d.dh;
          for (int fx = 0; fx < d.kw; ++fx, src += d.ic) {
            const int ix = ox * d.sw - d.pl + fx * d.dw;
            if (iy < 0 || iy >= d.ih || ix < 0 || ix >= d.iw) continue;
            float* t = img + (static_cast<long>(iy) * d.iw + ix) * d.ic;
            for (int c = 0; c < d.ic; ++c) t[c] += src[c];
          }
        }
  }
}

}  // namespace

void conv2dForwardGemm(GemmLib lib, const ConvDims& d, const float* x, const float* w, const float* bias, bool relu,
                       float* y) {
  const long K = patchCols(d);
  const long P = pixelsPerImage(d);
  const long chunk = isPointwise(d) ? d.n : imagesPerChunk(d);
  float* col = isPointwise(d) ? nullptr : scratch(static_cast<size_t>(chunk) * P * K).data();
  for (long i0 = 0; i0 < d.n; i0 += chunk) {
    const long i1 = std::min<long>(d.n, i0 + chunk);
    const long rows = (i1 - i0) * P;
    float* out = y + i0 * P * d.oc;
    const float* patches = x + i0 * P * d.ic;
    if (col) {
      im2col(d, x, i0, i1, col);
      patches = col;
    }
    float beta = 0.0f;
    if (bias) {
#pragma omp parallel for schedule(static)
      for (long r = 0; r < rows; ++r) std::memcpy(out + r * d.oc, bias, sizeof(float) * d.oc);
      beta = 1.0f;
    }
    sgemm(lib, false, false, rows, d.oc, K, patches, K, w, d.oc, beta, out, d.oc);
    if (relu) {
      const long total = rows * d.oc;
#pragma omp parallel for schedule(static)
      for (long i = 0; i < total; ++i) out[i] = out[i] > 0.0f ? out[i] : 0.0f;
    }
  }
}

void conv2dBackwardDataGemm(GemmLib lib, const ConvDims& d, const float* dy, const float* w, float* dx) {
  const long K = patchCols(d);
  const long P = pixelsPerImage(d);
  if (isPointwise(d)) {
    sgemm(lib, false, true, d.n * P, d.ic, d.oc, dy, d.oc, w, d.oc, 0.0f, dx, d.ic);
    return;
  }
  const long chunk = imagesPerChunk(d);
  float* col = scratch(static_cast<size_t>(chunk) * P * K).data();
  const long pixels = static_cast<long>(d.n) * d.ih * d.iw * d.ic;
#pragma omp parallel for schedule(static)
  for (long i = 0; i < pixels; ++i) dx[i] = 0.0f;
  for (long i0 = 0; i0 < d.n; i0 += chunk) {
    const long i1 = std::min<long>(d.n, i0 + chunk);
    sgemm(lib, false, true, (i1 - i0) * P, K, d.oc, dy + i0 * P * d.oc, d.oc, w, d.oc, 0.0f, col, K);
    col2imAdd(d, col, i0, i1, dx);
  }
}

void conv2dBackwardWeightsGemm(GemmLib lib, const ConvDims& d, const float* x, const float* dy, float* dw) {
  const long K = patchCols(d);
  const long P = pixelsPerImage(d);
  const long chunk = isPointwise(d) ? d.n : imagesPerChunk(d);
  float* col = isPointwise(d) ? nullptr : scratch(static_cast<size_t>(chunk) * P * K).data();
  for (long i0 = 0; i0 < d.n; i0 += chunk) {
    const long i1 = std::min<long>(d.n, i0 + chunk);
    const float* patches = x + i0 * P * d.ic;
    if (col) {
      im2col(d, x, i0, i1, col);
      patches = col;
    }
    sgemm(lib, true, false, K, d.oc, (i1 - i0) * P, patches, K, dy + i0 * P * d.oc, d.oc, i0 == 0 ? 0.0f : 1.0f, dw,
          d.oc);
  }
}

}  // namespace ibrar
