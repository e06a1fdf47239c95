// A seeded, class-separable toy dataset for tests and smoke runs: one uniform-random
// prototype image per class, and each sample is its class prototype plus Gaussian noise of
// std `noise`, clipped to [0,1] and quantised to uint8 like a real image file.
import { Rng } from '../engine/rng';
import type { ImageShape, Split } from './types';

export interface SyntheticSpec {
  height: number;
  width: number;
  channels: number;
  classes: number;
  trainSize: number;
  testSize: number;
  noise: number;
}

function samples(protos: Float32Array[], n: number, noise: number, rng: Rng, shape: ImageShape): Split {
  const size = shape[0] * shape[1] * shape[2];
  const k = protos.length;
  const images = new Uint8Array(n * size);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    // Labels cycle 0..k-1 so every prefix is (nearly) class-balanced.
    const c = i % k;
    labels[i] = c;
    const proto = protos[c];
    const base = i * size;
    for (let p = 0; p < size; p++) {
      let v = proto[p] + noise * rng.normal();
      v = v < 0 ? 0 : v > 1 ? 1 : v;
      images[base + p] = Math.round(v * 255);
    }
  }
  return { images, labels, n, shape: [...shape] };
}

export function makeSynthetic(spec: SyntheticSpec, seed: number): { train: Split; test: Split } {
  const rng = new Rng(seed).fork('data-synthetic');
  const shape: ImageShape = [spec.height, spec.width, spec.channels];
  const size = shape[0] * shape[1] * shape[2];
  const protoRng = rng.fork('prototypes');
  const protos = Array.from({ length: spec.classes }, () => protoRng.fillUniform(new Float32Array(size), 0, 1));
  return {
    train: samples(protos, spec.trainSize, spec.noise, rng.fork('train'), shape),
    test: samples(protos, spec.testSize, spec.noise, rng.fork('test'), shape),
  };
}
