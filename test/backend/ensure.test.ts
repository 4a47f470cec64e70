import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../../scripts/jupyter';

// A notebook that computes without calling initBackend(): evaluation (and training) choose the
// best backend themselves and say so, instead of running on tfjs's plain-JavaScript fallback.
test('evaluation without initBackend() picks the best backend, says so once, and never runs on cpu silently', () => {
  const lib = path.join(PROJECT_ROOT, 'dist', 'lib');
  const script = `
    const tf = require('@tensorflow/tfjs');
    const { ResNet } = require(${JSON.stringify(path.join(lib, 'models'))});
    const { syntheticDataset } = require(${JSON.stringify(path.join(lib, 'data'))});
    const { extractFeatures } = require(${JSON.stringify(path.join(lib, 'eval'))});
    (async () => {
      const net = new ResNet({ depth: 18, stem: 'cifar', width: 4, seed: 0 });
      const ds = syntheticDataset({ size: 8, numClasses: 2 });
      const f = await extractFeatures(net, ds, { batchSize: 4 });
      await extractFeatures(net, ds, { batchSize: 4 });
      console.log(JSON.stringify({ backend: tf.getBackend(), rows: f.n }));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const env = { ...process.env };
  delete env.MIXMASK_BACKEND;
  const r = spawnSync(process.execPath, ['-e', script], { cwd: PROJECT_ROOT, encoding: 'utf8', env, timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(out.rows, 8);
  assert.notEqual(out.backend, 'cpu');
  const notes = r.stderr.split('\n').filter((l) => l.startsWith('no backend was chosen (initBackend() not called): backend: '));
  assert.equal(notes.length, 1, r.stderr);
});
