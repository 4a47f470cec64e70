/**
 * `npm run export -- --checkpoint runs/x/checkpoint.safetensors --out backbone.safetensors [--heads]`
 * Writes a checkpoint's backbone as a torchvision-named .safetensors file (OIHW convolutions,
 * int64 BatchNorm counters) that PyTorch loads with strict=True into a torchvision ResNet whose
 * fc is nn.Identity; see docs/interop.md and lib/interop/python/mixmask_torch.py.
 */
import { initBackend } from '../lib/backend';
import { Args, runCli } from './cli';
import { exportCheckpointToTorch, torchvisionRecipe } from '../lib/interop';

export const USAGE = `usage: npm run export -- --checkpoint <checkpoint.safetensors> --out <file.safetensors> [options]
  --heads                also export the projection / prediction heads (as nn.Sequential keys, described in the metadata)
  --backbone <online|target>   which backbone of the checkpoint (default online; target = momentum/EMA copy)
  --help`;

export interface ExportArgs {
  checkpoint: string;
  out: string;
  heads: boolean;
  backbone: 'online' | 'target';
}

export function parseExportArgs(argv: readonly string[]): ExportArgs | 'help' {
  const args = new Args(argv, { options: ['--checkpoint', '--out', '--backbone'], flags: ['--heads'] });
  if (args.help) return 'help';
  const out = args.required('--out');
  if (!/\.safetensors$/i.test(out)) throw new Error(`--out must end in .safetensors, got '${out}'`);
  return {
    checkpoint: args.required('--checkpoint'),
    out,
    heads: args.flag('--heads'),
    backbone: args.oneOf('--backbone', ['online', 'target'] as const) ?? 'online',
  };
}

export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  const args = parseExportArgs(argv);
  if (args === 'help') {
    console.log(USAGE);
    return 0;
  }
  // Nothing is computed: the plain JS backend avoids starting wasm threads for a file conversion.
  await initBackend({ force: 'cpu', env: {} });
  const r = exportCheckpointToTorch(args.checkpoint, args.out, { heads: args.heads, backbone: args.backbone });
  console.log(`${args.checkpoint} → ${r.file}: ${r.tensors} tensors, ResNet-${r.arch.depth} (${r.arch.stem} stem, width ${r.arch.width})${r.heads.length ? `, heads ${r.heads.join(', ')}` : ''}`);
  console.log(`PyTorch model: ${torchvisionRecipe(r.arch)}; load_state_dict(..., strict=True)`);
  return 0;
}

runCli('export', module, () => main());
