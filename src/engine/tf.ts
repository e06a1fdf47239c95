// The one place that loads TensorFlow.js. Every module imports `tf` from here so that
// a single tfjs-core instance (and its kernel/gradient registries) is shared.
//
// We load the union package '@tensorflow/tfjs' rather than bare tfjs-core: only its Node
// bundle registers the gradient functions (tfjs-core's CommonJS build ships none), and
// tfjs-node / tfjs-node-gpu build on the same union package.
import * as tf from '@tensorflow/tfjs';

export { tf };
export type Tensor = tf.Tensor;
export type Tensor1D = tf.Tensor1D;
export type Tensor2D = tf.Tensor2D;
export type Tensor4D = tf.Tensor4D;
export type Variable = tf.Variable;
