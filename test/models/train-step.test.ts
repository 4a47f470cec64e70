import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { Linear, resnet18 } from '../../lib/models';
import { Rng } from '../../lib/util/rng';
import { tensorCounts, useBackend } from '../helpers';

// The training path users get without a GPU: wasm with our convolution-gradient kernels.
before(() => useBackend('wasm'));

test('a supervised training step lowers the loss over 20 steps on a fixed batch, without leaking tensors', async () => {
  const net = resnet18({ width: 8, seed: 1 });
  const classifier = new Linear(net.featureDim, 4, new Rng(2));
  const rng = new Rng(3);
  const x = tf.tensor4d(rng.fillUniform(new Float32Array(8 * 16 * 16 * 3)), [8, 16, 16, 3]);
  const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 0, 1, 2, 3], 'int32'), 4);
  const optimizer = tf.train.momentum(0.05, 0.9);
  const vars = [...net.trainableVariables(), ...classifier.trainableVariables()];

  const losses: number[] = [];
  const counts = await tensorCounts(20, () => {
    const loss = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(labels, classifier.apply(net.apply(x, true))) as tf.Scalar,
        vars,
      );
      optimizer.applyGradients(grads as { [name: string]: tf.Variable }); // tfjs types the map as Tensors, reads it as Variables
      return value;
    });
    losses.push(loss.dataSync()[0]);
    loss.dispose();
  });

  assert.ok(losses.every(Number.isFinite), `non-finite loss: ${losses}`);
  assert.ok(losses[19] < 0.5 * losses[0], `loss did not decrease enough: ${losses[0]} → ${losses[19]}`);
  // The optimizer allocates its momentum slots on the first step; after that the count is flat.
  assert.deepEqual(counts.slice(1), Array(19).fill(counts[1]), `tensor counts drift: ${counts}`);
  optimizer.dispose();
  [x, labels].forEach((t) => t.dispose());
  net.dispose();
  classifier.dispose();
});
