/**
 * `npm run bench [-- --json] [--quick] [--only <name>[,<name>…]]`: measures this machine on the
 * selected backend (MIXMASK_BACKEND to force one) and prints one line, or one JSON object with
 * --json, per measurement.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatBackendReport, initBackend } from '../lib/backend';
import { describeAdapter, webgpuAdapter } from '../lib/backend/webgpu';
import type { BenchContext, BenchSection, Measurement } from './harness';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const quick = args.includes('--quick');
  const onlyIndex = args.indexOf('--only');
  const only = onlyIndex >= 0 ? args[onlyIndex + 1] : undefined;
  const unknown = args.filter((a, i) => !['--json', '--quick', '--only'].includes(a) && !(onlyIndex >= 0 && i === onlyIndex + 1));
  if (unknown.length > 0) throw new Error(`bench: unknown argument(s) ${unknown.join(' ')}; expected --json, --quick, --only <name>[,<name>…]`);

  const report = await initBackend();
  if (!json) console.log(formatBackendReport(report) + '\n');
  // On webgpu every measurement names the adapter (the text header above already does).
  const adapter = webgpuAdapter();
  const device = adapter ? describeAdapter(adapter) : undefined;

  const results: Measurement[] = [];
  const ctx: BenchContext = {
    backend: report.name,
    threads: report.threads,
    quick,
    results,
    report(measured) {
      const m = device !== undefined ? { ...measured, device } : measured;
      results.push(m);
      console.log(json ? JSON.stringify(m) : formatMeasurement(m));
    },
  };
  const dir = path.join(__dirname, 'sections');
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.js')).sort() : [];
  for (const file of files) {
    if (only && !only.split(',').some((o) => file.includes(o))) continue;
    const mod = (await import(path.join(dir, file))) as { run?: BenchSection };
    if (typeof mod.run !== 'function') throw new Error(`bench: ${file} does not export run(ctx)`);
    await mod.run(ctx);
  }
  if (results.length === 0) console.log('bench: no measurement matched');
}

function formatMeasurement(m: Measurement): string {
  const parts = [`${m.name.padEnd(40)} ${m.backend} batch ${m.batch}`];
  if (m.imgPerSec !== undefined) parts.push(`${m.imgPerSec.toFixed(1)} img/s`);
  if (m.ms !== undefined) parts.push(`${m.ms.toFixed(1)} ms`);
  if (m.peer) parts.push(`${m.peer} ${m.peerImgPerSec?.toFixed(1)} img/s, ratio ${m.ratio?.toFixed(2)}×`);
  if (m.extra) parts.push(Object.entries(m.extra).map(([k, v]) => `${k} ${v}`).join(', '));
  return parts.join(' | ');
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
