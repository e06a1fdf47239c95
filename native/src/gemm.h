// Row-major single-precision GEMM on either library:
//   C[M, N] = op(A) * op(B) + beta * C,  op(X) = X or X^T.
#pragma once
#include <cstddef>

namespace ibrar {

enum class GemmLib { kOpenBlas, kDnnl };

void sgemm(GemmLib lib, bool transA, bool transB, long m, long n, long k, const float* a, long lda, const float* b,
           long ldb, float beta, float* c, long ldc);

}  // namespace ibrar
