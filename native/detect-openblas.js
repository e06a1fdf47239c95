// Prints 1 when OpenBLAS (header and shared library) is installed, else 0. binding.gyp uses
// it to make OpenBLAS an optional extra: ibrar's default kernels need only oneDNN.
const fs = require('fs');
const path = require('path');

const includeDirs = ['/usr/include', '/usr/include/x86_64-linux-gnu', '/usr/include/aarch64-linux-gnu', '/usr/local/include', '/usr/include/openblas'];
const libDirs = ['/usr/lib', '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/local/lib', '/usr/lib64'];
const header = includeDirs.some((d) => fs.existsSync(path.join(d, 'cblas.h')));
const lib = libDirs.some((d) => fs.existsSync(path.join(d, 'libopenblas.so')));
process.stdout.write(header && lib ? '1' : '0');
