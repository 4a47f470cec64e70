import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FASHION_MNIST_DEBIAN_DIR } from '../../lib/data';
import { resnet18 } from '../../lib/models';
import { saveCheckpoint } from '../../lib/train/checkpoint';
import { parseArgs } from '../../scripts/evaluate';
import { useBackend } from '../helpers';

const script = path.join(__dirname, '..', '..', 'scripts', 'evaluate.js');
const present = fs.existsSync(path.join(FASHION_MNIST_DEBIAN_DIR, 'train-images-idx3-ubyte.gz'));
let dir = '';
let ckpt = '';

before(async () => {
  await useBackend('wasm');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-eval-'));
  ckpt = path.join(dir, 'last.safetensors');
  const net = resnet18({ width: 2, seed: 1 });
  await saveCheckpoint(ckpt, net.namedState().map(([n, v]) => ['backbone.' + n, v]), { backbone: net.config, epoch: 3, step: 30 });
  net.dispose();
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

function run(args: string[]) {
  return spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', env: { ...process.env, MIXMASK_BACKEND: 'wasm' }, timeout: 120_000 });
}

test('argument validation names the flag and the value', () => {
  assert.throws(() => parseArgs(['--dataset', 'fashion-mnist', '--protocol', 'knn']), /--checkpoint <file.safetensors> is required/);
  assert.throws(() => parseArgs(['--checkpoint', ckpt, '--dataset', 'mnist', '--protocol', 'knn']), /--dataset must be one of cifar100, cifar10, tiny-imagenet, fashion-mnist, synthetic, got 'mnist'/);
  assert.throws(() => parseArgs(['--checkpoint', ckpt, '--dataset', 'cifar10', '--protocol', 'semi5']), /--protocol must be one of knn, linear, semi1, semi10, finetune, got 'semi5'/);
  assert.throws(() => parseArgs(['--checkpoint', ckpt, '--dataset', 'cifar10', '--protocol', 'knn', '--epochs', '0']), /--epochs must be an integer ≥ 1, got '0'/);
  assert.throws(() => parseArgs(['--checkpoint', ckpt, '--dataset', 'cifar10', '--protocol', 'knn', '--t', 'abc']), /--t must be a number > 0, got 'abc'/);
  assert.throws(() => parseArgs(['--checkpoint', ckpt, '--dataset', 'cifar10', '--protocol', 'knn', '--bogus']), /unknown option --bogus/);
  assert.throws(() => parseArgs(['--checkpoint', path.join(dir, 'nope.safetensors'), '--dataset', 'cifar10', '--protocol', 'knn']), /does not exist/);
  assert.throws(() => parseArgs(['--checkpoint', ckpt, '--dataset', 'cifar10', '--protocol', 'knn', '--normalize', 'x']), /--normalize must be none or one of/);
  const ok = parseArgs(['--checkpoint', ckpt, '--dataset', 'cifar10', '--protocol', 'semi1', '--epochs', '2', '--limit-train', '100']);
  assert.equal(ok.protocol, 'semi1');
  assert.equal(ok.epochs, 2);
  assert.equal(ok.limitTrain, 100);
  const bad = run(['--dataset', 'cifar10']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--checkpoint <file.safetensors> is required/);
  assert.match(bad.stderr, /usage: npm run eval/);
});

test('the CLI evaluates a checkpoint (knn, linear) on Fashion-MNIST and writes JSON atomically', { skip: present ? false : 'dataset-fashion-mnist not installed' }, () => {
  for (const protocol of ['knn', 'linear']) {
    const out = path.join(dir, 'results', `${protocol}.json`);
    const r = run(['--checkpoint', ckpt, '--dataset', 'fashion-mnist', '--protocol', protocol, '--limit-train', '300', '--limit-test', '100', '--epochs', '2', '--k', '20', '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(fs.readFileSync(out, 'utf8'));
    assert.equal(res.format, 'mixmask-ts-eval/1');
    assert.equal(res.protocol, protocol);
    assert.equal(res.backend.name, 'wasm');
    assert.equal(res.trainSamples, 300);
    assert.equal(res.testSamples, 100);
    assert.equal(res.checkpointMeta.epoch, 3);
    assert.ok(res.top1 >= 0 && res.top1 <= 100 && res.top5 >= res.top1, JSON.stringify(res));
    assert.deepEqual(fs.readdirSync(path.dirname(out)).filter((f) => f.includes('.tmp')), [], 'temp file left behind');
    assert.match(r.stdout, new RegExp(`${protocol} on fashion-mnist: top-1`));
  }
});

test('a missing dataset fails with lib/data\'s message', () => {
  const r = spawnSync(process.execPath, [script, '--checkpoint', ckpt, '--dataset', 'cifar100', '--protocol', 'knn', '--quiet'], {
    encoding: 'utf8',
    env: { ...process.env, MIXMASK_BACKEND: 'wasm', MIXMASK_DATA: path.join(dir, 'no-data') },
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /CIFAR-100: folder .* does not exist/);
});
