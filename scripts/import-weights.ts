/**
 * `npm run import -- --in file.(safetensors|pth|pth.tar) --out our-checkpoint.safetensors [--arch resnet50] [--stem imagenet]`
 * Reads a torchvision-named ResNet (plain, `module.`, or MoCo's `module.encoder_q.`; .pth files
 * through the user's PyTorch) and writes our checkpoint format (`backbone.` keys, metadata with
 * the backbone config and pixel normalisation), which `npm run eval` and `loadBackbone` read.
 */
import { initBackend } from '../lib/backend';
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
  let input = '';
  let out = '';
  const o: TorchImportToCheckpointOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--help': case '-h': return 'help';
      case '--in': input = value(); break;
      case '--out': out = value(); break;
      case '--arch': {
        const v = value();
        const m = /^resnet(18|34|50)$/.exec(v);
        if (!m) throw new Error(`--arch must be resnet18, resnet34 or resnet50, got '${v}'`);
        o.depth = Number(m[1]) as ResNetDepth;
        break;
      }
      case '--stem': {
        const v = value();
        if (v !== 'cifar' && v !== 'imagenet') throw new Error(`--stem must be cifar or imagenet, got '${v}'`);
        o.stem = v as ResNetStem;
        break;
      }
      case '--width': {
        const v = value();
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) throw new Error(`--width must be a positive integer, got '${v}'`);
        o.width = n;
        break;
      }
      case '--prefix': o.prefix = value(); break; // '' (no prefix) is a valid value
      case '--normalize': {
        const v = value();
        if (v !== 'none' && !(v in NORMALIZATION)) throw new Error(`--normalize must be none or one of ${Object.keys(NORMALIZATION).join(', ')}, got '${v}'`);
        o.normalize = v as TorchImportToCheckpointOptions['normalize'];
        break;
      }
      case '--select': o.select = value(); break;
      case '--trust-pickle': o.trustPickle = true; break;
      case '--no-strict': o.strict = false; break;
      default: throw new Error(flag.startsWith('--') ? `unknown option ${flag}` : `unexpected argument '${flag}'`);
    }
  }
  if (!input) throw new Error('--in is required');
  if (!out) throw new Error('--out is required');
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
  const r = importTorchToCheckpoint(args.input, args.out, args.options);
  const c = r.config;
  console.log(`${args.input} → ${args.out}: ResNet-${c.depth} (${c.stem} stem, width ${c.width}) from "${r.prefix}", ${r.imported} tensors`);
  if (r.skippedHead.length) console.log(`  skipped the head: ${r.skippedHead.length} tensors (${r.skippedHead.slice(0, 4).join(', ')}${r.skippedHead.length > 4 ? ', …' : ''})`);
  if (r.ignoredOutsidePrefix) console.log(`  ignored ${r.ignoredOutsidePrefix} tensors outside "${r.prefix}" (momentum encoder, queue, …)`);
  if (r.skippedUnknown.length) console.log(`  skipped ${r.skippedUnknown.length} unknown tensors (--no-strict)`);
  if (r.defaulted.length) console.log(`  ${r.defaulted.length} BatchNorm counters absent, set to 0`);
  return 0;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      console.error(`import: ${e instanceof Error ? e.message : String(e)}`);
      process.exit(1);
    },
  );
}
