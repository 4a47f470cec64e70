import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FrameworkName } from '../../lib/frameworks';
import type { ViewMethod } from '../../lib/masks/views';
import { pretrainConfig } from '../../lib/presets';
import { readRunConfig, storedRunConfig } from '../../lib/train/config';

const REPORT = path.resolve(__dirname, '..', '..', '..', 'reports', 'fashion-mnist-cpu');

test('storedRunConfig renames the old heads.momentum to targetMomentum in place and leaves today\'s configs alone', () => {
  const today = pretrainConfig('byol', 'synthetic', 'smoke');
  assert.equal(storedRunConfig(today, 'x'), today);
  const { targetMomentum, ...rest } = today.heads;
  const keys = Object.keys(today.heads);
  const old = { ...today, heads: Object.fromEntries(keys.map((k) => (k === 'targetMomentum' ? ['momentum', targetMomentum] : [k, rest[k as keyof typeof rest]]))) };
  const upgraded = storedRunConfig(old, 'x');
  // The trainer compares stored and asked-for configs as JSON: the key order must survive.
  assert.equal(JSON.stringify(upgraded), JSON.stringify(today));
  assert.throws(() => storedRunConfig(null, 'run/config.json'), /run\/config\.json: the run config is not an object/);
});

test('a config stored before the validation split existed reads as validation null, in pretrainConfig\'s key order', () => {
  const today = pretrainConfig('simclr', 'fashion-mnist', 'cpu', { validation: null });
  const { validation, ...old } = today;
  assert.equal(validation, null);
  assert.equal(JSON.stringify(storedRunConfig(old, 'x')), JSON.stringify(today));
  const held = pretrainConfig('simclr', 'fashion-mnist', 'cpu');
  assert.equal(storedRunConfig(held, 'x'), held);
});

test('the committed Fashion-MNIST runs load in today\'s field names and equal what the cpu preset gives', () => {
  const dirs = fs.readdirSync(REPORT).filter((d) => fs.existsSync(path.join(REPORT, d, 'config.json')));
  // The eight seed-0 runs monitored on test (before the validation split), and any run since.
  assert.equal(dirs.filter((d) => !/-val-s\d+$/.test(d)).length, 8, `runs under ${REPORT}: ${dirs.join(', ')}`);
  for (const d of dirs) {
    const c = readRunConfig(path.join(REPORT, d, 'config.json'));
    assert.equal(typeof c.heads.targetMomentum, 'number', d);
    assert.ok(!('momentum' in c.heads), d);
    const preset = pretrainConfig(c.framework as FrameworkName, c.dataset, c.profile, { method: c.view.method as ViewMethod, seed: c.seed, validation: c.validation });
    assert.equal(JSON.stringify(c.heads), JSON.stringify(preset.heads), `${d}: heads`);
    assert.equal(/-val-s\d+$/.test(d), c.validation !== null, `${d}: folder name and validation split disagree`);
  }
});
