import * as tf from '@tensorflow/tfjs';
import { Module } from '../../lib/models/module';
import { Rng } from '../../lib/util/rng';

/**
 * Gives every BatchNorm of a module non-trivial state (scale, shift, running mean/var and a
 * step counter), so that a weight/bias or mean/var mix-up in a conversion changes the output.
 */
export function randomizeBatchNorm(m: Module, seed: number): void {
  const rng = new Rng(seed);
  tf.tidy(() => {
    for (const [name, v] of m.namedState()) {
      const n = v.size;
      if (name.endsWith('num_batches_tracked')) v.assign(tf.scalar(1 + rng.int(10000), 'int32'));
      else if (v.rank !== 1) continue;
      else if (name.endsWith('running_var') || (name.endsWith('.weight') && !name.includes('linear'))) {
        v.assign(tf.tensor1d(rng.fillUniform(new Float32Array(n), 0.5, 1.5)));
      } else if (name.endsWith('running_mean') || (name.endsWith('.bias') && !name.includes('linear'))) {
        v.assign(tf.tensor1d(rng.fillNormal(new Float32Array(n), 0, 0.1)));
      }
    }
  });
}

/** A seeded NHWC batch in [0, 1]. */
export function randomImages(n: number, size: number, seed: number): tf.Tensor4D {
  const data = new Rng(seed).fillUniform(new Float32Array(n * size * size * 3));
  return tf.tensor4d(data, [n, size, size, 3]);
}
