// Process-wide oneDNN engine and stream. Node calls the addon from one thread at a time per
// isolate, but worker_threads could share the module, so kernels hold `mu` while they run.
#pragma once
#include <dnnl.hpp>

#include <mutex>

namespace ibrar {

struct Runtime {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  std::mutex mu;
};

Runtime& runtime();
void clearConvCache();
void clearMatMulCache();

}  // namespace ibrar
