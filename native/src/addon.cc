// N-API entry points. Tensors are addressed as byte offsets into one heap view (the tfjs
// wasm backend's HEAPU8): the kernels read and write that memory in place, so no tensor data
// crosses the JS boundary. Every offset and extent is bounds-checked against the view before
// any kernel touches it.
#include <node_api.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <utility>

#include "kernels.h"

namespace {

using namespace ibrar;

struct ArgError {
  std::string message;
};

class Args {
 public:
  Args(napi_env env, napi_callback_info info) : env_(env) {
    argc_ = kMax;
    if (napi_get_cb_info(env, info, &argc_, argv_, nullptr, nullptr) != napi_ok) throw ArgError{"bad call"};
  }

  // The heap: a typed array (any element type) over an ArrayBuffer or SharedArrayBuffer.
  void heap(size_t i) {
    napi_typedarray_type type;
    size_t length;
    void* data;
    napi_value buffer;
    size_t byteOffset;
    if (i >= argc_ || napi_get_typedarray_info(env_, argv_[i], &type, &length, &data, &buffer, &byteOffset) != napi_ok)
      throw ArgError{"argument " + std::to_string(i) + " must be a typed array over the heap"};
    if (type != napi_uint8_array) throw ArgError{"heap must be a Uint8Array"};
    base_ = static_cast<uint8_t*>(data);
    bytes_ = length;
  }

  double number(size_t i) {
    double v;
    if (i >= argc_ || napi_get_value_double(env_, argv_[i], &v) != napi_ok)
      throw ArgError{"argument " + std::to_string(i) + " must be a number"};
    return v;
  }

  int64_t integer(size_t i) {
    int64_t v;
    if (i >= argc_ || napi_get_value_int64(env_, argv_[i], &v) != napi_ok)
      throw ArgError{"argument " + std::to_string(i) + " must be a number"};
    return v;
  }

  // float32 tensor of `count` elements at a byte offset in the heap; offset -1 means "none".
  float* tensor(size_t i, size_t count, bool optional = false) {
    const int64_t off = integer(i);
    if (optional && off < 0) return nullptr;
    if (off < 0 || off % 4 != 0 || static_cast<uint64_t>(off) > bytes_ || count > (bytes_ - off) / 4)
      throw ArgError{"tensor at argument " + std::to_string(i) + " lies outside the heap"};
    return reinterpret_cast<float*>(base_ + off);
  }

  // Float64Array of at least n entries (not the heap: a host array of its own).
  double* doubles(size_t i, size_t n) {
    napi_typedarray_type type;
    size_t length;
    void* data;
    napi_value buffer;
    size_t byteOffset;
    if (i >= argc_ || napi_get_typedarray_info(env_, argv_[i], &type, &length, &data, &buffer, &byteOffset) != napi_ok ||
        type != napi_float64_array || length < n)
      throw ArgError{"argument " + std::to_string(i) + " must be a Float64Array of at least " + std::to_string(n)};
    return static_cast<double*>(data);
  }

  // Int32Array of exactly n entries copied into `out`.
  void dims(size_t i, int* out, size_t n) {
    napi_typedarray_type type;
    size_t length;
    void* data;
    napi_value buffer;
    size_t byteOffset;
    if (i >= argc_ || napi_get_typedarray_info(env_, argv_[i], &type, &length, &data, &buffer, &byteOffset) != napi_ok ||
        type != napi_int32_array || length != n)
      throw ArgError{"argument " + std::to_string(i) + " must be an Int32Array of " + std::to_string(n)};
    std::memcpy(out, data, n * sizeof(int));
  }

 private:
  static constexpr size_t kMax = 16;
  napi_env env_;
  size_t argc_;
  napi_value argv_[kMax];
  uint8_t* base_ = nullptr;
  size_t bytes_ = 0;
};

size_t product(std::initializer_list<int> xs) {
  size_t p = 1;
  for (int x : xs) p *= static_cast<size_t>(x);
  return p;
}

void checkConv(const ConvDims& d) {
  const int* v = &d.n;
  for (int i = 0; i < kConvDimCount; ++i) {
    const bool isPad = i >= 13;  // pt, pl, pb, pr may be zero (or negative on the far side)
    if (!isPad && v[i] <= 0) throw ArgError{"conv dims must be positive"};
  }
}

// Runs `body`, turning C++ failures into JS exceptions.
template <typename Body>
napi_value guarded(napi_env env, Body body) {
  try {
    return body();
  } catch (const ArgError& e) {
    napi_throw_type_error(env, nullptr, ("ibrar_native: " + e.message).c_str());
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, (std::string("ibrar_native: ") + e.what()).c_str());
  }
  return nullptr;
}

napi_value undefinedValue(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

ConvEngine convEngine(Args& a, size_t i) {
  const int64_t e = a.integer(i);
  if (e < 0 || e > 4) throw ArgError{"conv engine must be 0..4"};
  return static_cast<ConvEngine>(e);
}

// conv2d(heap, xOff, wOff, biasOff | -1, yOff, dims[17], relu, engine)
napi_value Conv2d(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info);
    a.heap(0);
    ConvDims d;
    a.dims(5, &d.n, kConvDimCount);
    checkConv(d);
    const float* x = a.tensor(1, product({d.n, d.ih, d.iw, d.ic}));
    const float* w = a.tensor(2, product({d.kh, d.kw, d.ic, d.oc}));
    const float* bias = a.tensor(3, d.oc, true);
    float* y = a.tensor(4, product({d.n, d.oh, d.ow, d.oc}));
    conv2dForward(convEngine(a, 7), d, x, w, bias, a.integer(6) != 0, y);
    return undefinedValue(env);
  });
}

// conv2dBackpropInput(heap, dyOff, wOff, dxOff, dims[17], engine)
napi_value Conv2dBackpropInput(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info);
    a.heap(0);
    ConvDims d;
    a.dims(4, &d.n, kConvDimCount);
    checkConv(d);
    const float* dy = a.tensor(1, product({d.n, d.oh, d.ow, d.oc}));
    const float* w = a.tensor(2, product({d.kh, d.kw, d.ic, d.oc}));
    float* dx = a.tensor(3, product({d.n, d.ih, d.iw, d.ic}));
    conv2dBackwardData(convEngine(a, 5), d, dy, w, dx);
    return undefinedValue(env);
  });
}

// conv2dBackpropFilter(heap, xOff, dyOff, dwOff, dims[17], engine)
napi_value Conv2dBackpropFilter(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info);
    a.heap(0);
    ConvDims d;
    a.dims(4, &d.n, kConvDimCount);
    checkConv(d);
    const float* x = a.tensor(1, product({d.n, d.ih, d.iw, d.ic}));
    const float* dy = a.tensor(2, product({d.n, d.oh, d.ow, d.oc}));
    float* dw = a.tensor(3, product({d.kh, d.kw, d.ic, d.oc}));
    conv2dBackwardWeights(convEngine(a, 5), d, x, dy, dw);
    return undefinedValue(env);
  });
}

// matmul(heap, aOff, bOff, biasOff | -1, cOff, dims[8], engine)
napi_value MatMul(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info);
    a.heap(0);
    MatMulDims d;
    a.dims(5, &d.batchA, kMatMulDimCount);
    if (d.batchA <= 0 || d.batchB <= 0 || d.m <= 0 || d.k <= 0 || d.n <= 0)
      throw ArgError{"matmul dims must be positive"};
    if (d.batchA != d.batchB && d.batchA != 1 && d.batchB != 1)
      throw ArgError{"matmul batches must match or one must be 1"};
    const int batch = d.batchA > d.batchB ? d.batchA : d.batchB;
    const float* A = a.tensor(1, product({d.batchA, d.m, d.k}));
    const float* B = a.tensor(2, product({d.batchB, d.k, d.n}));
    const float* bias = a.tensor(3, d.n, true);
    float* C = a.tensor(4, product({batch, d.m, d.n}));
    const int64_t engine = a.integer(6);
    if (engine < 0 || engine > 3) throw ArgError{"matmul engine must be 0..3"};
    matmul(d, A, B, bias, C, static_cast<MatMulEngine>(engine));
    return undefinedValue(env);
  });
}

void checkPool(const PoolDims& d) {
  const int* v = &d.n;
  for (int i = 0; i < 10; ++i)
    if (v[i] <= 0) throw ArgError{"pool dims must be positive"};
  if (d.pt < 0 || d.pl < 0 || d.pt >= d.kh || d.pl >= d.kw) throw ArgError{"pool pads must lie inside the window"};
}

// maxPoolGrad(heap, xOff, dyOff, dxOff, dims[12])
napi_value MaxPoolGrad(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info);
    a.heap(0);
    PoolDims d;
    a.dims(4, &d.n, kPoolDimCount);
    checkPool(d);
    const float* x = a.tensor(1, product({d.n, d.ih, d.iw, d.c}));
    const float* dy = a.tensor(2, product({d.n, d.oh, d.ow, d.c}));
    float* dx = a.tensor(3, product({d.n, d.ih, d.iw, d.c}));
    maxPoolBackward(d, x, dy, dx);
    return undefinedValue(env);
  });
}

// Two positive integer arguments (a [rows, cols] view), checked.
std::pair<int64_t, int64_t> rowsCols(Args& a, size_t i, size_t j, const char* what) {
  const int64_t rows = a.integer(i), cols = a.integer(j);
  if (rows <= 0 || cols <= 0) throw ArgError{std::string(what) + " dims must be positive"};
  return {rows, cols};
}

// reduceSum(heap, xOff, outOff, rows, cols, leading, scale): see sumLeading / sumTrailing.
napi_value ReduceSum(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info);
    a.heap(0);
    const auto [rows, cols] = rowsCols(a, 3, 4, "reduce");
    const bool leading = a.integer(5) != 0;
    const double scale = a.number(6);
    const float* x = a.tensor(1, static_cast<size_t>(rows) * cols);
    float* out = a.tensor(2, static_cast<size_t>(leading ? cols : rows));
    if (leading) sumLeading(x, rows, cols, static_cast<float>(scale), out);
    else sumTrailing(x, rows, cols, static_cast<float>(scale), out);
    return undefinedValue(env);
  });
}

BatchNormDims batchNormDims(Args& a, size_t dimsAt, size_t epsAt) {
  int v[4];
  a.dims(dimsAt, v, 4);
  if (v[0] <= 0 || v[1] <= 0) throw ArgError{"batch norm dims must be positive"};
  const double eps = a.number(epsAt);
  if (!(eps > 0)) throw ArgError{"batch norm eps must be positive"};
  return BatchNormDims{v[0], v[1], v[2], v[3], eps};
}

// batchNormForward(heap, xOff, gammaOff, betaOff, meanOff, varOff, yOff, dims[rows, C, training, relu], eps)
napi_value BatchNormForwardFn(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info);
    a.heap(0);
    const BatchNormDims d = batchNormDims(a, 7, 8);
    const size_t n = static_cast<size_t>(d.rows) * d.channels;
    batchNormForward(d, a.tensor(1, n), a.tensor(2, d.channels), a.tensor(3, d.channels), a.tensor(4, d.channels), a.tensor(5, d.channels),
                     a.tensor(6, n));
    return undefinedValue(env);
  });
}

// batchNormBackward(heap, dyOff, xOff, yOff | -1, gammaOff, meanOff, varOff, dxOff | -1, dgammaOff | -1, dbetaOff | -1,
//                   dims[rows, C, training, relu], eps)
napi_value BatchNormBackwardFn(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info);
    a.heap(0);
    const BatchNormDims d = batchNormDims(a, 10, 11);
    const size_t n = static_cast<size_t>(d.rows) * d.channels;
    const float* y = a.tensor(3, n, true);
    if (d.relu && !y) throw ArgError{"batch norm backward with a fused relu needs the forward output"};
    batchNormBackward(d, a.tensor(1, n), a.tensor(2, n), y, a.tensor(4, d.channels), a.tensor(5, d.channels), a.tensor(6, d.channels),
                      a.tensor(7, n, true), a.tensor(8, d.channels, true), a.tensor(9, d.channels, true));
    return undefinedValue(env);
  });
}

// addChannelBias(heap, xOff, biasOff, yOff, rows, channels)
napi_value AddChannelBias(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info);
    a.heap(0);
    const auto [rows, channels] = rowsCols(a, 4, 5, "bias add");
    const size_t n = static_cast<size_t>(rows) * channels;
    addChannelBias(a.tensor(1, n), rows, channels, a.tensor(2, channels), a.tensor(3, n));
    return undefinedValue(env);
  });
}

// maxMin(heap, aOff, bOff, outOff, n, max)
napi_value MaxMin(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info);
    a.heap(0);
    const int64_t n = a.integer(4);
    if (n <= 0) throw ArgError{"maxMin length must be positive"};
    maxMin(a.tensor(1, n), a.tensor(2, n), n, a.integer(5) != 0, a.tensor(3, n));
    return undefinedValue(env);
  });
}

// matMul64(a, b, out, m): Float64Arrays of m·m; out must not alias a or b.
napi_value MatMul64(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info);
    const int64_t m = a.integer(3);
    if (m <= 0 || m > 65536) throw ArgError{"matMul64 size must be in [1, 65536]"};
    const size_t n = static_cast<size_t>(m) * m;
    const double* A = a.doubles(0, n);
    const double* B = a.doubles(1, n);
    double* out = a.doubles(2, n);
    if (out == A || out == B) throw ArgError{"matMul64 output must not alias an input"};
    matMul64(A, B, m, out);
    return undefinedValue(env);
  });
}

// sgdStep(heap, paramOff, gradOff, bufOff | -1, paramOutOff, bufOutOff | -1, n, hyper Float64Array[lr, momentum, wd, started])
napi_value SgdStep(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info);
    a.heap(0);
    const int64_t n = a.integer(6);
    if (n <= 0) throw ArgError{"sgdStep length must be positive"};
    const double* h = a.doubles(7, 4);
    const bool useMomentum = h[1] > 0;
    const bool started = h[3] != 0;
    const float* buf = a.tensor(3, n, true);
    float* bufOut = a.tensor(5, n, true);
    if (useMomentum && (!bufOut || (started && !buf))) throw ArgError{"sgdStep with momentum needs its buffers"};
    sgdStep(a.tensor(1, n), a.tensor(2, n), buf, n, static_cast<float>(h[0]), static_cast<float>(h[1]), static_cast<float>(h[2]), started,
            a.tensor(4, n), bufOut);
    return undefinedValue(env);
  });
}

// info() -> { runtime: string, threads: number, openblas: boolean }
napi_value Info(napi_env env, napi_callback_info) {
  return guarded(env, [&] {
    napi_value obj, runtimeStr, threads, openblas;
    napi_create_object(env, &obj);
    const std::string rt = describeRuntime();
    napi_create_string_utf8(env, rt.c_str(), rt.size(), &runtimeStr);
    napi_create_int32(env, maxThreads(), &threads);
#ifdef IBRAR_HAVE_OPENBLAS
    napi_get_boolean(env, true, &openblas);
#else
    napi_get_boolean(env, false, &openblas);
#endif
    napi_set_named_property(env, obj, "runtime", runtimeStr);
    napi_set_named_property(env, obj, "threads", threads);
    napi_set_named_property(env, obj, "openblas", openblas);
    return obj;
  });
}

// setThreads(n)
napi_value SetThreads(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args a(env, info);
    const int64_t n = a.integer(0);
    if (n < 1 || n > 1024) throw ArgError{"threads must be in [1, 1024]"};
    setThreads(static_cast<int>(n));
    return undefinedValue(env);
  });
}

napi_value ClearCaches(napi_env env, napi_callback_info) {
  return guarded(env, [&] {
    clearCaches();
    return undefinedValue(env);
  });
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"conv2d", nullptr, Conv2d, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropInput", nullptr, Conv2dBackpropInput, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropFilter", nullptr, Conv2dBackpropFilter, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"matmul", nullptr, MatMul, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"maxPoolGrad", nullptr, MaxPoolGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"reduceSum", nullptr, ReduceSum, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNormForward", nullptr, BatchNormForwardFn, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNormBackward", nullptr, BatchNormBackwardFn, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"addChannelBias", nullptr, AddChannelBias, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"maxMin", nullptr, MaxMin, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"matMul64", nullptr, MatMul64, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sgdStep", nullptr, SgdStep, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"clearCaches", nullptr, ClearCaches, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
