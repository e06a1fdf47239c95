// Batched matrix multiply with optional bias and ReLU, on oneDNN's matmul primitive or on
// OpenBLAS sgemm. Also owns the shared runtime (engine, stream, thread count).
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>

#include "gemm.h"
#include "kernels.h"
#include "runtime.h"

#ifdef IBRAR_HAVE_OPENBLAS
extern "C" {
// OpenBLAS extensions (declared in cblas.h of some builds only).
void openblas_set_num_threads(int);
char* openblas_get_config(void);
}
#endif

namespace ibrar {

Runtime& runtime() {
  static Runtime rt;
  return rt;
}

namespace {

using dnnl::memory;
using dt = memory::data_type;

struct Key {
  std::array<int, kMatMulDimCount + 1> v;
  bool operator==(const Key& o) const { return v == o.v; }
};
struct KeyHash {
  size_t operator()(const Key& k) const {
    size_t h = 1469598103934665603ull;
    for (int x : k.v) h = (h ^ static_cast<size_t>(x)) * 1099511628211ull;
    return h;
  }
};

struct Plan {
  dnnl::matmul prim;
  memory::desc a, b, bias, c;
};

std::unordered_map<Key, std::unique_ptr<Plan>, KeyHash>& plans() {
  static std::unordered_map<Key, std::unique_ptr<Plan>, KeyHash> p;
  return p;
}

memory::desc operandDesc(memory::dim batch, memory::dim rows, memory::dim cols, bool transposed) {
  // Logical [batch, rows, cols]; stored as [batch, cols, rows] when transposed.
  const memory::dims strides = transposed ? memory::dims{rows * cols, 1, rows} : memory::dims{rows * cols, cols, 1};
  return memory::desc({batch, rows, cols}, dt::f32, strides);
}

Plan& dnnlPlan(const MatMulDims& d, bool hasBias) {
  Key key;
  std::memcpy(key.v.data(), &d, sizeof(MatMulDims));
  key.v[kMatMulDimCount] = (hasBias ? 1 : 0) + 2 * omp_get_max_threads();
  auto& cache = plans();
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  if (cache.size() >= 256) cache.clear();
  auto plan = std::make_unique<Plan>();
  const memory::dim batch = std::max(d.batchA, d.batchB);
  plan->a = operandDesc(d.batchA, d.m, d.k, d.transA != 0);
  plan->b = operandDesc(d.batchB, d.k, d.n, d.transB != 0);
  plan->c = operandDesc(batch, d.m, d.n, false);
  plan->bias = memory::desc({1, 1, d.n}, dt::f32, memory::dims{d.n, d.n, 1});
  dnnl::primitive_attr attr;
  if (d.relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(ops);
  }
  auto& eng = runtime().eng;
  dnnl::matmul::desc desc = hasBias ? dnnl::matmul::desc(plan->a, plan->b, plan->bias, plan->c)
                                    : dnnl::matmul::desc(plan->a, plan->b, plan->c);
  plan->prim = dnnl::matmul(dnnl::matmul::primitive_desc(desc, attr, eng));
  return *cache.emplace(key, std::move(plan)).first->second;
}

void dnnlMatmul(const MatMulDims& d, const float* a, const float* b, const float* bias, float* c) {
  Plan& p = dnnlPlan(d, bias != nullptr);
  auto& rt = runtime();
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(p.a, rt.eng, const_cast<float*>(a))},
      {DNNL_ARG_WEIGHTS, memory(p.b, rt.eng, const_cast<float*>(b))},
      {DNNL_ARG_DST, memory(p.c, rt.eng, c)},
  };
  if (bias) args[DNNL_ARG_BIAS] = memory(p.bias, rt.eng, const_cast<float*>(bias));
  p.prim.execute(rt.strm, args);
  rt.strm.wait();
}

void gemmMatmul(GemmLib lib, const MatMulDims& d, const float* a, const float* b, const float* bias, float* c) {
  const int batch = std::max(d.batchA, d.batchB);
  const size_t aStep = d.batchA == 1 ? 0 : static_cast<size_t>(d.m) * d.k;
  const size_t bStep = d.batchB == 1 ? 0 : static_cast<size_t>(d.k) * d.n;
  const size_t cStep = static_cast<size_t>(d.m) * d.n;
  const int lda = d.transA ? d.m : d.k;
  const int ldb = d.transB ? d.k : d.n;
  // Bias is folded in by pre-filling C and accumulating (beta = 1).
  float beta = 0.0f;
  if (bias) {
    const size_t rows = static_cast<size_t>(batch) * d.m;
    for (size_t r = 0; r < rows; ++r) std::memcpy(c + r * d.n, bias, sizeof(float) * d.n);
    beta = 1.0f;
  }
  if (batch > 1 && d.batchB == 1 && !d.transA) {
    // A's batches stacked row-wise form one tall matrix: a single large GEMM.
    sgemm(lib, false, d.transB != 0, static_cast<long>(batch) * d.m, d.n, d.k, a, lda, b, ldb, beta, c, d.n);
  } else {
    for (int i = 0; i < batch; ++i)
      sgemm(lib, d.transA != 0, d.transB != 0, d.m, d.n, d.k, a + i * aStep, lda, b + i * bStep, ldb, beta,
            c + i * cStep, d.n);
  }
  if (d.relu) {
    const size_t total = static_cast<size_t>(batch) * cStep;
    for (size_t i = 0; i < total; ++i) c[i] = c[i] > 0.0f ? c[i] : 0.0f;
  }
}

}  // namespace

// Runs small products on one thread: splitting a sub-millisecond GEMM costs more in fork/join
// than it saves, and when another process holds the second core the barrier can wait a whole
// scheduler slice. oneDNN sizes its work split from omp_get_max_threads() when a primitive is
// created, so the thread count is part of the plan key and is set around creation and use.
constexpr double kSmallFlops = 1 << 24;

class SingleThreadScope {
 public:
  explicit SingleThreadScope(bool active) : previous_(active ? omp_get_max_threads() : 0) {
    if (previous_) omp_set_num_threads(1);
  }
  ~SingleThreadScope() {
    if (previous_) omp_set_num_threads(previous_);
  }

 private:
  int previous_;
};

void matmul(const MatMulDims& d, const float* a, const float* b, const float* bias, float* c, MatMulEngine engine) {
  std::lock_guard<std::mutex> lock(runtime().mu);
  const double flops = 2.0 * std::max(d.batchA, d.batchB) * d.m * d.n * d.k;
  SingleThreadScope scope(flops < kSmallFlops && omp_get_max_threads() > 1);
  if (engine == MatMulEngine::kBlas) gemmMatmul(GemmLib::kOpenBlas, d, a, b, bias, c);
  else if (engine == MatMulEngine::kDnnlGemm) gemmMatmul(GemmLib::kDnnl, d, a, b, bias, c);
  else dnnlMatmul(d, a, b, bias, c);
}

void clearMatMulCache() {
  std::lock_guard<std::mutex> lock(runtime().mu);
  plans().clear();
}

void clearCaches() {
  clearConvCache();
  clearMatMulCache();
}

std::string describeRuntime() {
  const dnnl_version_t* v = dnnl_version();
  std::string s = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                  std::to_string(v->patch) + " (cpu runtime " +
                  (v->cpu_runtime == DNNL_RUNTIME_OMP ? std::string("OpenMP") : std::to_string(v->cpu_runtime)) +
                  ")";
#ifdef IBRAR_HAVE_OPENBLAS
  s += std::string(", ") + openblas_get_config();
#else
  s += ", no OpenBLAS";
#endif
  return s;
}

int maxThreads() { return omp_get_max_threads(); }

void setThreads(int n) {
  omp_set_num_threads(n);
#ifdef IBRAR_HAVE_OPENBLAS
  openblas_set_num_threads(n);
#endif
}

}  // namespace ibrar
