/**
 * Parity of the PyTorch engine's frameworks with ours (docs/torch-engine.md#parity): the same
 * initial weights (our checkpoint, read by the engine in our layout), the same batch, and the
 * same mask grids, partners and MoCo shuffle (the engine's RNG is ours, ported exactly, seeded
 * alike) → for each framework × view method every loss term agrees to 1e-4 relative and every
 * parameter's gradient to 1e-3 (max-abs error over max-abs value).
 */
import { before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { FRAMEWORKS, type FrameworkName, type HeadConfig, makeFramework } from '../../lib/frameworks';
import { readSafetensorsFile, writeSafetensorsFile } from '../../lib/io/safetensors';
import { disposeViews, makeViews, type ViewSpec } from '../../lib/masks/views';
import { saveCheckpoint } from '../../lib/train/checkpoint';
import { Rng } from '../../lib/util/rng';
import { relError, useBackend } from '../helpers';
import { randomImages } from '../interop/common';
import { helper, skip } from './common';

const BACKBONE = { depth: 18 as const, stem: 'cifar' as const, width: 4, seed: 3 };
const HEADS: HeadConfig = { dim: 16, projHidden: 32, predHidden: 32, temperature: 0.2, queueSize: 64, targetMomentum: 0.99, bnSplits: 4 };
const VIEWS: Array<[string, ViewSpec]> = [
  ['none', { method: 'none' }],
  ['mixmask', { method: 'mixmask' }],
  ['unmix', { method: 'unmix' }],
  ['both', { method: 'both' }],
  ['erase', { method: 'erase' }],
  ['mixmask, asymmetric off', { method: 'mixmask', asymmetric: false }],
  ['mixmask, discrete g=5 per sample, permutation', { method: 'mixmask', maskType: 'discrete', gridSize: 5, perSample: true, partner: 'permutation' }],
];
const N = 8;
const SIZE = 16;
const TERM_TOL = 1e-4;
const GRAD_TOL = 1e-3;

before(async () => {
  await useBackend('wasm'); // float32 like PyTorch's CPU kernels, and fast enough for 35 passes
});

test('torch engine parity: five frameworks × view methods, loss terms to 1e-4 and gradients to 1e-3', { skip }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-torch-parity-'));
  const tmp = (f: string) => path.join(dir, f);
  const x1 = randomImages(N, SIZE, 1);
  const x2 = randomImages(N, SIZE, 2);
  try {
    writeSafetensorsFile(tmp('x.safetensors'), new Map([
      ['x1', { dtype: 'F32' as const, shape: x1.shape, data: x1.dataSync() as Float32Array }],
      ['x2', { dtype: 'F32' as const, shape: x2.shape, data: x2.dataSync() as Float32Array }],
    ]));
    type Ours = { loss: number; terms: Record<string, number>; grads: Map<string, Float32Array>; kinds: string[] };
    const ours = new Map<string, Ours>();
    const cases: unknown[] = [];
    for (const [fi, name] of FRAMEWORKS.entries()) {
      const fw = makeFramework(name as FrameworkName, BACKBONE, HEADS, 7);
      try {
        const ckpt = tmp(`${name}.safetensors`);
        await saveCheckpoint(ckpt, fw.namedState(), { backbone: BACKBONE, epoch: 0, step: 0 });
        const seed = 100 + fi; // Un-Mix's coin lands on mixup for some frameworks and CutMix for others
        for (const [vi, [, spec]] of VIEWS.entries()) {
          const rng = new Rng(seed);
          const views = makeViews(x1, spec, rng);
          try {
            const { result, grads, targets } = await fw.computeGradients(x1, x2, views, rng);
            const byName = new Map<string, Float32Array>();
            for (const [pname, v] of fw.namedTrainable()) {
              const g = grads[v.name];
              byName.set(pname, g ? Float32Array.from(g.dataSync() as Float32Array) : new Float32Array(v.size));
            }
            tf.dispose([...Object.values(grads), ...targets]);
            ours.set(`${name}/${vi}`, { loss: result.loss, terms: result.terms, grads: byName, kinds: views.map((v) => v.kind) });
          } finally {
            disposeViews(views);
          }
        }
        cases.push({
          config: { framework: name, backbone: BACKBONE, heads: HEADS, seed: 7 },
          checkpoint: ckpt,
          seed,
          views: VIEWS.map(([, s]) => s),
          out: VIEWS.map((_, vi) => tmp(`${name}-${vi}.out.safetensors`)),
        });
      } finally {
        fw.dispose();
      }
    }
    helper('parity', { input: tmp('x.safetensors'), cases });

    const failures: string[] = [];
    let worstTerm = 0;
    let worstGrad = 0;
    for (const name of FRAMEWORKS) {
      for (const [vi, [label]] of VIEWS.entries()) {
        const mine = ours.get(`${name}/${vi}`)!;
        const file = readSafetensorsFile(tmp(`${name}-${vi}.out.safetensors`));
        const theirs = JSON.parse(file.metadata.result) as { loss: number; terms: Record<string, number> };
        const what = `${name} + ${label} (${mine.kinds.join(', ') || 'no extra view'})`;
        assert.deepEqual(Object.keys(theirs.terms).sort(), Object.keys(mine.terms).sort(), `${what}: term names`);
        for (const [k, v] of [['loss', mine.loss] as const, ...Object.entries(mine.terms)]) {
          const other = k === 'loss' ? theirs.loss : theirs.terms[k];
          const e = Math.abs(v - other) / Math.max(Math.abs(v), 1e-6);
          worstTerm = Math.max(worstTerm, e);
          if (!(e <= TERM_TOL)) failures.push(`${what}: ${k} ${v} vs ${other} (relative ${e.toExponential(2)})`);
        }
        assert.equal(file.tensors.size, mine.grads.size, `${what}: number of gradients`);
        // A bias right before a BatchNorm (the last projector layer of BYOL and SimSiam, whose z
        // reaches the loss only through one) has a gradient that is zero in exact arithmetic:
        // both sides give float32 rounding noise there. Such gradients (below 1e-5 of the case's
        // largest) must be as small on the PyTorch side; every other one agrees to GRAD_TOL.
        let caseScale = 0;
        for (const g of mine.grads.values()) for (const v of g) caseScale = Math.max(caseScale, Math.abs(v));
        const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        for (const [pname, g] of mine.grads) {
          const tg = file.tensors.get(pname);
          if (!tg) {
            failures.push(`${what}: no gradient for ${pname} from PyTorch`);
            continue;
          }
          if (maxAbs(g) < 1e-5 * caseScale) {
            const m = maxAbs(tg.data as Float32Array);
            if (!(m < 1e-5 * caseScale)) failures.push(`${what}: gradient of ${pname} is ${m} in PyTorch, at rounding level (${maxAbs(g)}) here`);
            continue;
          }
          const e = relError(tg.data as Float32Array, g);
          worstGrad = Math.max(worstGrad, e);
          if (!(e <= GRAD_TOL)) failures.push(`${what}: gradient of ${pname} differs (relative ${e.toExponential(2)})`);
        }
      }
    }
    t.diagnostic(`worst loss-term error ${worstTerm.toExponential(2)}, worst gradient error ${worstGrad.toExponential(2)} over ${FRAMEWORKS.length * VIEWS.length} cases`);
    assert.deepEqual(failures.slice(0, 20), []);
  } finally {
    x1.dispose();
    x2.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
