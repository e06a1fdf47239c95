// 2-D convolution forward / backward-data / backward-weights on oneDNN.
//
// tfjs tensors stay where they are (NHWC activations, HWIO filters): oneDNN is told those
// layouts for the user memory and picks its own internal layout for each operand
// (format_tag::any). When its choice differs from the user layout we reorder into a cached
// scratch buffer (and back, for outputs). Primitive creation costs far more than a small
// convolution, so everything that depends only on the geometry is cached per shape.
#include <dnnl.hpp>
#include <omp.h>

#include <array>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "gemm.h"
#include "kernels.h"
#include "runtime.h"

namespace ibrar {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

enum class Op { kForward, kForwardBias, kForwardRelu, kForwardBiasRelu, kBackwardData, kBackwardWeights };

struct Key {
  std::array<int, kConvDimCount + 1> v;
  bool operator==(const Key& o) const { return v == o.v; }
};
struct KeyHash {
  size_t operator()(const Key& k) const {
    size_t h = 1469598103934665603ull;
    for (int x : k.v) h = (h ^ static_cast<size_t>(x)) * 1099511628211ull;
    return h;
  }
};

Key makeKey(const ConvDims& d, Op op, bool blocked) {
  Key k;
  std::memcpy(k.v.data(), &d, sizeof(ConvDims));
  // oneDNN splits work by omp_get_max_threads() at creation: plans are per thread count.
  k.v[kConvDimCount] = (static_cast<int>(op) * 2 + (blocked ? 1 : 0)) + 16 * omp_get_max_threads();
  return k;
}

// One operand: the layout tfjs uses and, when oneDNN wants another, a reorder plus a buffer
// in oneDNN's layout.
struct Operand {
  memory::desc user;
  memory::desc internal;
  bool needsReorder = false;
  memory buffer;           // internal-layout storage, valid when needsReorder
  dnnl::reorder toInternal;  // user -> internal (inputs)
  dnnl::reorder toUser;      // internal -> user (outputs)

  void init(const memory::desc& userMd, const memory::desc& chosen, bool isOutput) {
    user = userMd;
    internal = chosen;
    needsReorder = user != internal;
    if (!needsReorder) return;
    auto& eng = runtime().eng;
    buffer = memory(internal, eng);
    if (isOutput) toUser = dnnl::reorder(dnnl::reorder::primitive_desc(eng, internal, eng, user));
    else toInternal = dnnl::reorder(dnnl::reorder::primitive_desc(eng, user, eng, internal));
  }

  // Memory oneDNN reads: the user data itself or its reordered copy.
  memory input(const float* data) {
    auto& rt = runtime();
    memory userMem(user, rt.eng, const_cast<float*>(data));
    if (!needsReorder) return userMem;
    toInternal.execute(rt.strm, userMem, buffer);
    return buffer;
  }
  // Memory oneDNN writes; call finish() afterwards.
  memory output(float* data) {
    if (needsReorder) return buffer;
    return memory(user, runtime().eng, data);
  }
  void finish(float* data) {
    if (!needsReorder) return;
    auto& rt = runtime();
    memory userMem(user, rt.eng, data);
    toUser.execute(rt.strm, buffer, userMem);
  }
};

struct Geometry {
  memory::desc src, weights, dst, bias;
  memory::dims strides, dilates, padL, padR;
};

// tfjs layouts, or format_tag::any for the operands oneDNN may choose.
Geometry geometry(const ConvDims& d, bool any) {
  Geometry g;
  const tag act = any ? tag::any : tag::nhwc;
  g.src = memory::desc({d.n, d.ic, d.ih, d.iw}, dt::f32, act);
  g.dst = memory::desc({d.n, d.oc, d.oh, d.ow}, dt::f32, act);
  g.weights = memory::desc({d.oc, d.ic, d.kh, d.kw}, dt::f32, any ? tag::any : tag::hwio);
  g.bias = memory::desc({d.oc}, dt::f32, tag::a);
  g.strides = {d.sh, d.sw};
  g.dilates = {d.dh - 1, d.dw - 1};  // oneDNN counts the gaps, tfjs the step
  g.padL = {d.pt, d.pl};
  g.padR = {d.pb, d.pr};
  return g;
}

Geometry userGeometry(const ConvDims& d) { return geometry(d, false); }

// Activations stay NHWC (what tfjs has; oneDNN's AVX2 kernels accept it) unless `blocked`,
// which lets oneDNN pick its blocked layouts at the price of reordering activations in and
// out. Weights are always `any`: they are small to reorder.
Geometry chooserGeometry(const ConvDims& d, bool blocked) {
  Geometry g = geometry(d, blocked);
  g.weights = memory::desc({d.oc, d.ic, d.kh, d.kw}, dt::f32, tag::any);
  return g;
}

dnnl::convolution_forward::desc forwardDesc(const Geometry& g, dnnl::prop_kind prop, bool bias) {
  using dnnl::convolution_forward;
  if (bias)
    return convolution_forward::desc(prop, dnnl::algorithm::convolution_direct, g.src, g.weights, g.bias, g.dst,
                                     g.strides, g.dilates, g.padL, g.padR);
  return convolution_forward::desc(prop, dnnl::algorithm::convolution_direct, g.src, g.weights, g.dst, g.strides,
                                   g.dilates, g.padL, g.padR);
}

struct Plan {
  dnnl::primitive prim;
  Operand src, weights, dst;  // for backward ops: src = x or dx, dst = dy, weights = w or dw
  bool hasBias = false;
};

class PlanCache {
 public:
  template <typename Make>
  Plan& get(const Key& key, Make make) {
    auto it = plans_.find(key);
    if (it != plans_.end()) return *it->second;
    // Shapes in a training run are few; a runaway caller (many shapes) only costs rebuilds.
    if (plans_.size() >= 256) plans_.clear();
    auto plan = std::make_unique<Plan>();
    make(*plan);
    return *plans_.emplace(key, std::move(plan)).first->second;
  }
  void clear() { plans_.clear(); }

 private:
  std::unordered_map<Key, std::unique_ptr<Plan>, KeyHash> plans_;
};

PlanCache& cache() {
  static PlanCache c;
  return c;
}

}  // namespace

void conv2dForwardDnnl(const ConvDims& d, const float* x, const float* w, const float* bias, bool relu, float* y,
                       bool blocked) {
  const Op op = bias ? (relu ? Op::kForwardBiasRelu : Op::kForwardBias) : (relu ? Op::kForwardRelu : Op::kForward);
  Plan& p = cache().get(makeKey(d, op, blocked), [&](Plan& plan) {
    auto& eng = runtime().eng;
    const Geometry user = userGeometry(d);
    const Geometry g = chooserGeometry(d, blocked);
    dnnl::primitive_attr attr;
    if (relu) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
      attr.set_post_ops(ops);
    }
    dnnl::convolution_forward::primitive_desc pd(forwardDesc(g, dnnl::prop_kind::forward_inference, bias != nullptr),
                                                 attr, eng);
    plan.prim = dnnl::convolution_forward(pd);
    plan.src.init(user.src, pd.src_desc(), false);
    plan.weights.init(user.weights, pd.weights_desc(), false);
    plan.dst.init(user.dst, pd.dst_desc(), true);
    plan.hasBias = bias != nullptr;
  });
  auto& rt = runtime();
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, p.src.input(x)},
      {DNNL_ARG_WEIGHTS, p.weights.input(w)},
      {DNNL_ARG_DST, p.dst.output(y)},
  };
  if (p.hasBias) args[DNNL_ARG_BIAS] = memory(userGeometry(d).bias, rt.eng, const_cast<float*>(bias));
  p.prim.execute(rt.strm, args);
  p.dst.finish(y);
  rt.strm.wait();
}

void conv2dBackwardDataDnnl(const ConvDims& d, const float* dy, const float* w, float* dx, bool blocked) {
  Plan& p = cache().get(makeKey(d, Op::kBackwardData, blocked), [&](Plan& plan) {
    auto& eng = runtime().eng;
    const Geometry user = userGeometry(d);
    const Geometry g = chooserGeometry(d, blocked);
    dnnl::convolution_forward::primitive_desc hint(forwardDesc(g, dnnl::prop_kind::forward_training, false), eng);
    dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, g.src, g.weights, g.dst,
                                               g.strides, g.dilates, g.padL, g.padR);
    dnnl::convolution_backward_data::primitive_desc pd(desc, eng, hint);
    plan.prim = dnnl::convolution_backward_data(pd);
    plan.src.init(user.src, pd.diff_src_desc(), true);
    plan.weights.init(user.weights, pd.weights_desc(), false);
    plan.dst.init(user.dst, pd.diff_dst_desc(), false);
  });
  auto& rt = runtime();
  p.prim.execute(rt.strm, {
                              {DNNL_ARG_DIFF_DST, p.dst.input(dy)},
                              {DNNL_ARG_WEIGHTS, p.weights.input(w)},
                              {DNNL_ARG_DIFF_SRC, p.src.output(dx)},
                          });
  p.src.finish(dx);
  rt.strm.wait();
}

void conv2dBackwardWeightsDnnl(const ConvDims& d, const float* x, const float* dy, float* dw, bool blocked) {
  Plan& p = cache().get(makeKey(d, Op::kBackwardWeights, blocked), [&](Plan& plan) {
    auto& eng = runtime().eng;
    const Geometry user = userGeometry(d);
    const Geometry g = chooserGeometry(d, blocked);
    dnnl::convolution_forward::primitive_desc hint(forwardDesc(g, dnnl::prop_kind::forward_training, false), eng);
    dnnl::convolution_backward_weights::desc desc(dnnl::algorithm::convolution_direct, g.src, g.weights, g.dst,
                                                  g.strides, g.dilates, g.padL, g.padR);
    dnnl::convolution_backward_weights::primitive_desc pd(desc, eng, hint);
    plan.prim = dnnl::convolution_backward_weights(pd);
    plan.src.init(user.src, pd.src_desc(), false);
    plan.weights.init(user.weights, pd.diff_weights_desc(), true);
    plan.dst.init(user.dst, pd.diff_dst_desc(), false);
  });
  auto& rt = runtime();
  p.prim.execute(rt.strm, {
                              {DNNL_ARG_SRC, p.src.input(x)},
                              {DNNL_ARG_DIFF_DST, p.dst.input(dy)},
                              {DNNL_ARG_DIFF_WEIGHTS, p.weights.output(dw)},
                          });
  p.weights.finish(dw);
  rt.strm.wait();
}

// im2col + GEMM implementations (conv-gemm.cc).
void conv2dForwardGemm(GemmLib lib, const ConvDims& d, const float* x, const float* w, const float* bias, bool relu,
                       float* y);
void conv2dBackwardDataGemm(GemmLib lib, const ConvDims& d, const float* dy, const float* w, float* dx);
void conv2dBackwardWeightsGemm(GemmLib lib, const ConvDims& d, const float* x, const float* dy, float* dw);

namespace {
enum class ConvOp { kForward, kBackwardData, kBackwardWeights };

// Measured with bench/native-kernels.ts (VGG shapes, batch 100, 2 cores, this project's CI
// machine): oneDNN's direct convolutions on NHWC are the fastest or within a few % everywhere,
// 190–270 GFLOP/s, except the data gradient of a layer with few input channels (the RGB
// layer: K = IC per tap), where one GEMM over all patches is 2.4× faster (90 vs 37 GFLOP/s).
// An earlier rule that sent all maps of 8×8 and below to GEMM measured 20–40 % slower there.
ConvEngine resolve(ConvEngine e, ConvOp op, const ConvDims& d) {
  if (e != ConvEngine::kAuto) return e;
  return op == ConvOp::kBackwardData && d.ic < 8 ? ConvEngine::kGemmDnnl : ConvEngine::kDnnl;
}

GemmLib gemmLib(ConvEngine e) { return e == ConvEngine::kGemmOpenBlas ? GemmLib::kOpenBlas : GemmLib::kDnnl; }
}  // namespace

void conv2dForward(ConvEngine e, const ConvDims& d, const float* x, const float* w, const float* bias, bool relu,
                   float* y) {
  std::lock_guard<std::mutex> lock(runtime().mu);
  e = resolve(e, ConvOp::kForward, d);
  if (e == ConvEngine::kDnnl || e == ConvEngine::kDnnlBlocked)
    conv2dForwardDnnl(d, x, w, bias, relu, y, e == ConvEngine::kDnnlBlocked);
  else conv2dForwardGemm(gemmLib(e), d, x, w, bias, relu, y);
}

void conv2dBackwardData(ConvEngine e, const ConvDims& d, const float* dy, const float* w, float* dx) {
  std::lock_guard<std::mutex> lock(runtime().mu);
  e = resolve(e, ConvOp::kBackwardData, d);
  if (e == ConvEngine::kDnnl || e == ConvEngine::kDnnlBlocked)
    conv2dBackwardDataDnnl(d, dy, w, dx, e == ConvEngine::kDnnlBlocked);
  else conv2dBackwardDataGemm(gemmLib(e), d, dy, w, dx);
}

void conv2dBackwardWeights(ConvEngine e, const ConvDims& d, const float* x, const float* dy, float* dw) {
  std::lock_guard<std::mutex> lock(runtime().mu);
  e = resolve(e, ConvOp::kBackwardWeights, d);
  if (e == ConvEngine::kDnnl || e == ConvEngine::kDnnlBlocked)
    conv2dBackwardWeightsDnnl(d, x, dy, dw, e == ConvEngine::kDnnlBlocked);
  else conv2dBackwardWeightsGemm(gemmLib(e), d, x, dy, dw);
}

void clearConvCache() {
  std::lock_guard<std::mutex> lock(runtime().mu);
  cache().clear();
}

}  // namespace ibrar
