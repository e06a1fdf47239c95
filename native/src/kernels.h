// Kernels behind the N-API entry points in addon.cc. All tensors are float32, dense and
// row-major in tfjs layouts: activations NHWC, conv filters HWIO (tfjs [KH, KW, IC, OC]).
// Every function computes synchronously into caller-owned memory; errors are thrown as
// std::exception (dnnl::error derives from it).
#pragma once
#include <cstdint>
#include <string>

namespace ibrar {

// Geometry of one 2-D convolution. Padding is explicit (tfjs 'same'/'valid' resolved by the
// caller) and may be asymmetric; dilation is the tfjs value (1 = none).
struct ConvDims {
  int n, ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
};
constexpr int kConvDimCount = 17;

// Which implementation runs a convolution: oneDNN's convolution primitives on NHWC
// activations (kDnnl) or on its own blocked layouts with reorders (kDnnlBlocked), or im2col +
// GEMM (conv-gemm.cc) on OpenBLAS or on oneDNN's sgemm. kAuto picks per op and shape.
enum class ConvEngine { kAuto = 0, kDnnl = 1, kGemmOpenBlas = 2, kGemmDnnl = 3, kDnnlBlocked = 4 };

// y = conv(x, w) [+ bias] [relu]. bias may be null.
void conv2dForward(ConvEngine e, const ConvDims& d, const float* x, const float* w, const float* bias, bool relu, float* y);
// dx = conv^T(dy, w): gradient of the forward conv with respect to x.
void conv2dBackwardData(ConvEngine e, const ConvDims& d, const float* dy, const float* w, float* dx);
// dw = gradient of the forward conv with respect to w (HWIO).
void conv2dBackwardWeights(ConvEngine e, const ConvDims& d, const float* x, const float* dy, float* dw);

// C[b] = op(A[b]) * op(B[b]) [+ bias] [relu] with A [batchA, M, K] (or [batchA, K, M] when
// transA), B [batchB, K, N] (or [batchB, N, K] when transB), C [max(batchA, batchB), M, N].
// batchA and batchB are equal or one of them is 1 (broadcast). bias has N entries or is null.
struct MatMulDims {
  int batchA, batchB, m, k, n, transA, transB, relu;
};
constexpr int kMatMulDimCount = 8;
// kDnnl: oneDNN matmul primitive; kBlas: OpenBLAS sgemm; kDnnlGemm: oneDNN sgemm.
enum class MatMulEngine { kAuto = 0, kDnnl = 1, kBlas = 2, kDnnlGemm = 3 };
void matmul(const MatMulDims& d, const float* a, const float* b, const float* bias, float* c, MatMulEngine engine);

// Gradient of max pooling over NHWC x (window kh x kw, stride sh x sw, near pads pt/pl; taps
// outside the input are ignored): each dy entry goes to its window's first maximum.
struct PoolDims {
  int n, ih, iw, c, oh, ow, kh, kw, sh, sw, pt, pl;
};
constexpr int kPoolDimCount = 12;
void maxPoolBackward(const PoolDims& d, const float* x, const float* dy, float* dx);

// out[c] = scale * Σ_r x[r, c] (reducing leading axes) and out[r] = scale * Σ_c x[r, c]
// (reducing trailing axes); scale is 1 for a sum, 1/count for a mean.
void sumLeading(const float* x, long rows, long cols, float scale, float* out);
void sumTrailing(const float* x, long rows, long cols, float scale, float* out);

// Batch normalisation over the last axis of a [rows, channels] view, optional fused ReLU
// (batchnorm.cc). training: the batch's mean and biased variance are computed and written to
// mean/var; otherwise they are read (running statistics). Backward: y is the forward output
// (needed only with relu); dx, dgamma, dbeta may each be null.
struct BatchNormDims {
  int rows, channels, training, relu;
  double eps;
};
void batchNormForward(const BatchNormDims& d, const float* x, const float* gamma, const float* beta, float* mean, float* var, float* y);
void batchNormBackward(const BatchNormDims& d, const float* dy, const float* x, const float* y, const float* gamma, const float* mean,
                       const float* var, float* dx, float* dgamma, float* dbeta);

// y[r, c] = x[r, c] + bias[c] (a conv or linear layer's bias; batchnorm.cc).
void addChannelBias(const float* x, long rows, long channels, const float* bias, float* y);

// out = max(a, b) or min(a, b) element-wise over n values, NaN from either side propagating.
void maxMin(const float* a, const float* b, long n, bool max, float* out);

// out = a·b for row-major m×m float64 matrices (HSIC host algebra; elementwise.cc).
void matMul64(const double* a, const double* b, long m, double* out);

// One SGD step of optimizer.ts (coupled weight decay, PyTorch momentum): paramOut and, with
// momentum, bufOut (buf is read only when started). Bit-identical to the tfjs op sequence.
void sgdStep(const float* param, const float* grad, const float* buf, long n, float lr, float momentum, float weightDecay,
             bool started, float* paramOut, float* bufOut);

// Library versions and thread count, for diagnostics.
std::string describeRuntime();
int maxThreads();
void setThreads(int n);
// Drops cached primitives and scratch buffers.
void clearCaches();

}  // namespace ibrar
