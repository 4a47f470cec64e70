/** A ResNet + head + NT-Xent training step, run on a chosen backend and compared across backends. */
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { ntXent } from '../../lib/losses';
import { MlpHead, ResNet } from '../../lib/models';
import { relError } from '../helpers';

export interface StepResult {
  loss: number;
  grads: Map<string, Float32Array>;
}

export type Shape4 = [number, number, number, number];
export type BuildStep = () => { backbone: ResNet; head: MlpHead };

/** Loss and every parameter gradient of one step, on `backend`; nothing is left allocated. */
export async function lossAndGrads(backend: string, build: BuildStep, x: Float32Array, shape: Shape4): Promise<StepResult> {
  await tf.setBackend(backend);
  const { backbone, head } = build();
  const input = tf.tensor4d(x, shape);
  const half = shape[0] / 2;
  const named = [...backbone.namedParameters('backbone.'), ...head.namedParameters('head.')];
  const { value, grads } = tf.variableGrads(() => {
    const z = head.apply(backbone.apply(input, true), true);
    const [a, b] = tf.split(z, [half, half], 0) as [tf.Tensor2D, tf.Tensor2D];
    return tf.mean(ntXent(a, b, 0.5)) as tf.Scalar;
  }, named.map(([, v]) => v));
  // Asynchronous reads: webgpu under Node has no synchronous ones.
  const out: StepResult = { loss: (await value.data())[0], grads: new Map() };
  for (const [name, v] of named) out.grads.set(name, (await grads[v.name].data()) as Float32Array);
  value.dispose();
  tf.dispose(grads);
  input.dispose();
  backbone.dispose();
  head.dispose();
  return out;
}

/** Loss and the worst parameter gradient agree within `tol` (relative). */
export function compareSteps(got: StepResult, want: StepResult, tol: number): void {
  const lossErr = Math.abs(got.loss - want.loss) / Math.abs(want.loss);
  assert.ok(lossErr < tol, `loss ${got.loss} vs ${want.loss} (rel ${lossErr})`);
  assert.equal(got.grads.size, want.grads.size);
  let worst = { name: '', err: 0 };
  for (const [name, g] of want.grads) {
    const e = relError(got.grads.get(name)!, g);
    if (e > worst.err) worst = { name, err: e };
  }
  assert.ok(worst.err < tol, `gradient of ${worst.name}: rel err ${worst.err}`);
}
