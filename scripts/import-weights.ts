/**
 * `npm run import -- --in file.(safetensors|pth|pth.tar) --out our-checkpoint.safetensors [--arch resnet50] [--stem imagenet]`
 * Reads a torchvision-named ResNet (plain, `module.`, or MoCo's `module.encoder_q.`; .pth files
 * through the user's PyTorch) and writes our checkpoint format (`backbone.` keys, metadata with
 * the backbone config and pixel normalisation), which `npm run eval` and `loadBackbone` read.
 */
import { initBackend } from '../lib/backend';
import { Args, runCli } from './cli';
import { NORMALIZATION } from '../lib/data/augment';
import { importTorchToCheckpoint, TorchImportToCheckpointOptions } from '../lib/interop';
import type { ResNetDepth, ResNetStem } from '../lib/models/resnet';

export const USAGE = `usage: npm run import -- --in <file.safetensors|file.pth|file.pth.tar> --out <checkpoint.safetensors> [options]
  --arch <resnet18|resnet34|resnet50>   expected architecture (default: read off the weights; checked when given)
  --stem <cifar|imagenet>               expected stem (default: from conv1's kernel, 3×3 cifar / 7×7 imagenet)
  --width <n>                           expected base width (default: conv1's output channels)
  --prefix <p>                          key prefix of the backbone (default: detected; MoCo's module.encoder_q. is preferred)
  --normalize <${['none', ...Object.keys(NORMALIZATION)].join('|')}>   pixel normalisation recorded for eval (default imagenet, or what an exported file says)
  --select <entry>                      .pth only: entry of the saved dict holding the state dict (default state_dict, model, …)
  --trust-pickle                        .pth only: allow full unpickling (files that store Python objects; only if you trust the file)
  --no-strict                           skip, rather than reject, unknown tensors under the prefix
  --help`;

export interface ImportArgs {
  input: string;
  out: string;
  options: TorchImportToCheckpointOptions;
}

export function parseImportArgs(argv: readonly string[]): ImportArgs | 'help' {
  const args = new Args(argv, {
    options: ['--in', '--out', '--arch', '--stem', '--width', '--prefix', '--normalize', '--select'],
    flags: ['--trust-pickle', '--no-strict'],
  });
  if (args.help) return 'help';
  const o: TorchImportToCheckpointOptions = {};
  const arch = args.string('--arch');
  if (arch !== undefined) {
    const m = /^resnet(18|34|50)$/.exec(arch);
    if (!m) throw new Error(`--arch must be resnet18, resnet34 or resnet50, got '${arch}'`);
    o.depth = Number(m[1]) as ResNetDepth;
  }
  const stem = args.oneOf<ResNetStem>('--stem', ['cifar', 'imagenet']);
  if (stem) o.stem = stem;
  const width = args.int('--width', 1);
  if (width !== undefined) o.width = width;
  if (args.has('--prefix')) o.prefix = args.string('--prefix'); // '' (no prefix) is a valid value
  const normalize = args.string('--normalize');
  if (normalize !== undefined) {
    if (normalize !== 'none' && !(normalize in NORMALIZATION)) {
      throw new Error(`--normalize must be none or one of ${Object.keys(NORMALIZATION).join(', ')}, got '${normalize}'`);
    }
    o.normalize = normalize as TorchImportToCheckpointOptions['normalize'];
  }
  if (args.has('--select')) o.select = args.string('--select');
  if (args.flag('--trust-pickle')) o.trustPickle = true;
  if (args.flag('--no-strict')) o.strict = false;
  const input = args.required('--in');
  const out = args.required('--out');
  if (!/\.safetensors$/i.test(out)) throw new Error(`--out must end in .safetensors, got '${out}'`);
  return { input, out, options: o };
}

export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  const args = parseImportArgs(argv);
  if (args === 'help') {
    console.log(USAGE);
    return 0;
  }
  // Nothing is computed: the plain JS backend avoids starting wasm threads for a file conversion.
  await initBackend({ force: 'cpu', env: {} });
  const r = await importTorchToCheckpoint(args.input, args.out, args.options);
  const c = r.config;
  console.log(`${args.input} → ${args.out}: ResNet-${c.depth} (${c.stem} stem, width ${c.width}) from "${r.prefix}", ${r.imported} tensors`);
  if (r.skippedHead.length) console.log(`  skipped the head: ${r.skippedHead.length} tensors (${r.skippedHead.slice(0, 4).join(', ')}${r.skippedHead.length > 4 ? ', …' : ''})`);
  if (r.ignoredOutsidePrefix) console.log(`  ignored ${r.ignoredOutsidePrefix} tensors outside "${r.prefix}" (momentum encoder, queue, …)`);
  if (r.skippedUnknown.length) console.log(`  skipped ${r.skippedUnknown.length} unknown tensors (--no-strict)`);
  if (r.defaulted.length) console.log(`  ${r.defaulted.length} BatchNorm counters absent, set to 0`);
  return 0;
}

runCli('import', module, () => main());
