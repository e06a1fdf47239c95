# Optional native kernels for ibrar, built by scripts/build-native.js. Needs oneDNN
# (Debian: libdnnl-dev). OpenBLAS (libopenblas-dev) is optional: it only adds alternative
# GEMM engines for benchmarking (IBRAR_NATIVE_MATMUL=openblas, IBRAR_NATIVE_CONV=gemm-openblas).
{
  "variables": {
    "openblas%": "<!(node detect-openblas.js)"
  },
  "targets": [
    {
      "target_name": "ibrar_native",
      "sources": ["src/addon.cc", "src/conv.cc", "src/conv-gemm.cc", "src/gemm.cc", "src/matmul.cc", "src/pool.cc", "src/reduce.cc", "src/batchnorm.cc", "src/elementwise.cc"],
      "include_dirs": ["/usr/include/x86_64-linux-gnu"],
      # oneDNN's C++ API reports failures with exceptions; node's common.gypi turns them off.
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-O3", "-fexceptions", "-std=gnu++17", "-fvisibility=hidden", "-fopenmp", "-ffp-contract=off"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-ldnnl"],
      "conditions": [
        ["openblas==1", {
          "defines": ["IBRAR_HAVE_OPENBLAS"],
          "libraries": ["-lopenblas"]
        }]
      ]
    }
  ]
}
