#include "gemm.h"

#include <dnnl.h>
#ifdef IBRAR_HAVE_OPENBLAS
#include <cblas.h>
#endif

#include <stdexcept>
#include <string>

namespace ibrar {

void sgemm(GemmLib lib, bool transA, bool transB, long m, long n, long k, const float* a, long lda, const float* b,
           long ldb, float beta, float* c, long ldc) {
  if (m == 0 || n == 0) return;
  if (lib == GemmLib::kOpenBlas) {
#ifdef IBRAR_HAVE_OPENBLAS
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, n, k, 1.0f,
                a, lda, b, ldb, beta, c, ldc);
    return;
#else
    throw std::runtime_error("this build has no OpenBLAS (install libopenblas-dev and rebuild)");
#endif
  }
  const dnnl_status_t st =
      dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
  if (st != dnnl_success) throw std::runtime_error("dnnl_sgemm failed with status " + std::to_string(st));
}

}  // namespace ibrar
