/**
 * `node dist/scripts/backend-report.js [--force NAME] [--json FILE]`: which tfjs backend runs
 * here and why each better one was skipped (the report of lib/backend), as text on stdout and,
 * with --json, as JSON in FILE. With --force, exactly that backend (an error if it cannot run).
 * The GPU check (scripts/gpu-check) prints it first on the lent machine.
 */
import * as fs from 'node:fs';
import { formatBackendReport, initBackend } from '../lib/backend';
import { webgpuAdapter } from '../lib/backend/webgpu';

function parse(args: string[]): { force?: string; json?: string } {
  const out: { force?: string; json?: string } = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if ((a === '--force' || a === '--json') && args[i + 1] !== undefined && !args[i + 1].startsWith('--')) {
      out[a === '--force' ? 'force' : 'json'] = args[++i];
    } else {
      throw new Error(`backend-report: unexpected argument '${a}'; usage: backend-report [--force NAME] [--json FILE]`);
    }
  }
  return out;
}

async function main(): Promise<void> {
  const { force, json } = parse(process.argv.slice(2));
  const report = await initBackend(force !== undefined ? { force } : {});
  console.log(formatBackendReport(report));
  if (json !== undefined) {
    fs.writeFileSync(json, JSON.stringify({ ...report, adapter: webgpuAdapter() }, null, 2) + '\n');
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
