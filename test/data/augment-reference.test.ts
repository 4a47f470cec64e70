import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../helpers';
import { Rng } from '../../lib/util/rng';
import { NORMALIZATION, makeRecipe, twoViews, type RecipeName } from '../../lib/data';

/**
 * twoViews on the cpu backend, bit for bit as before the per-pixel chain went behind one kernel
 * call (lib/backend/augment-op.ts): the committed reproduction and every seeded test depend on
 * these values. The hashes (SHA-256 of each view's float32 bytes, first 16 hex digits) were
 * taken with the code of commit 33c30dc, before the change, on 12 random 11×9 images resized
 * to 7×7: every recipe as such, normalised, with the blur forced on (solarize and normalisation
 * then run after it) and with the fixed jitter order. The draws cover grayscale before and after
 * the jitter, every jitter op and BYOL's solarize.
 */
const BEFORE: Record<string, [string, string]> = {
  'mocov1/plain': ['4c76094da1736adb', 'b4a19aa5c032708b'],
  'mocov1/norm': ['e698df0b13c020ae', '6664d19d1bf2ecd9'],
  'mocov1/blur': ['4c76094da1736adb', 'b4a19aa5c032708b'],
  'mocov1/fixed': ['5563e51320dd4d55', 'fd6dcb970bdd0ab2'],
  'mocov2/plain': ['5a5f2c48006efd57', '17198ba7df1e5828'],
  'mocov2/norm': ['76d1632c4342c0b1', 'f4e43b1a4b84a39f'],
  'mocov2/blur': ['6fbb2f27094bcbf4', 'e3f526a29abf34bf'],
  'mocov2/fixed': ['0164bb72b588e6e1', 'd2b0351935de7836'],
  'simclr/plain': ['ae437747b9070b4e', '7d3fab3a7239051d'],
  'simclr/norm': ['834c8668142a89c7', '9992a112a5990b51'],
  'simclr/blur': ['5094d3990bca3741', 'df98b227dc35513e'],
  'simclr/fixed': ['d7d8203f2883f8ba', 'fbf2094a8eb65db2'],
  'byol/plain': ['0210214858248623', '7cc049f2572266d1'],
  'byol/norm': ['2c889631c68958bb', 'ebcc23733da6aa8e'],
  'byol/blur': ['4950620e0d101942', '0390b01f69f28930'],
  'byol/fixed': ['645ef93c434ce738', 'c7f96ce24c10c492'],
  'simsiam/plain': ['5a5f2c48006efd57', '17198ba7df1e5828'],
  'simsiam/norm': ['76d1632c4342c0b1', 'f4e43b1a4b84a39f'],
  'simsiam/blur': ['6fbb2f27094bcbf4', 'e3f526a29abf34bf'],
  'simsiam/fixed': ['0164bb72b588e6e1', 'd2b0351935de7836'],
};

before(async () => {
  await useBackend('cpu');
});

const hash = (a: Float32Array): string => createHash('sha256').update(Buffer.from(a.buffer, a.byteOffset, a.byteLength)).digest('hex').slice(0, 16);

test('twoViews on cpu: every recipe and variant bit for bit as before the augmentation kernel contract', async () => {
  const images = tf.tensor4d(new Rng(21).fillUniform(new Float32Array(12 * 11 * 9 * 3)), [12, 11, 9, 3]);
  const got: Record<string, [string, string]> = {};
  for (const name of ['mocov1', 'mocov2', 'simclr', 'byol', 'simsiam'] as RecipeName[]) {
    for (const variant of ['plain', 'norm', 'blur', 'fixed']) {
      const recipe = makeRecipe(name, {
        size: 7,
        normalize: variant === 'norm' ? NORMALIZATION.cifar10 : null,
        blur: variant === 'blur',
        jitterOrder: variant === 'fixed' ? 'fixed' : 'batch',
      });
      const { view1, view2 } = twoViews(images, recipe, new Rng(40));
      got[`${name}/${variant}`] = [hash((await view1.data()) as Float32Array), hash((await view2.data()) as Float32Array)];
      tf.dispose([view1, view2]);
    }
  }
  images.dispose();
  assert.deepEqual(got, BEFORE);
});
