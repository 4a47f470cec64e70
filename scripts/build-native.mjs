#!/usr/bin/env node
// Builds the optional oneDNN addon (native/onednn) with node-gyp. Never fails the install:
// when oneDNN's headers, a compiler, node-gyp or Node's headers are missing, or the build or a
// test load fails, it writes native/onednn/build-status.json { ok: false, reason } and exits 0
// (pass --strict to exit 1 instead, e.g. in CI). MIXMASK_SKIP_NATIVE=1 skips it.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.join(root, 'native', 'onednn');
const statusFile = path.join(dir, 'build-status.json');
const addon = path.join(dir, 'build', 'Release', 'mixmask_onednn.node');
const strict = process.argv.includes('--strict');
const quiet = process.argv.includes('--quiet');

function finish(ok, reason, extra = {}) {
  const status = { ok, reason, addon: ok ? path.relative(root, addon) : null, node: process.versions.node, napi: process.versions.napi, date: new Date().toISOString(), ...extra };
  fs.writeFileSync(statusFile, JSON.stringify(status, null, 2) + '\n');
  console.log(`native/onednn: ${ok ? 'built' : 'skipped'} — ${reason}`);
  process.exit(!ok && strict ? 1 : 0);
}

if (process.env.MIXMASK_SKIP_NATIVE === '1') finish(false, 'MIXMASK_SKIP_NATIVE=1');
if (process.platform !== 'linux') finish(false, `not built on ${process.platform} (the addon targets Linux with Debian's libdnnl-dev)`);

// oneDNN headers and library (Debian/Ubuntu: apt-get install libdnnl-dev).
// DNNL_INCLUDE_DIRS (':'-separated) replaces the folders searched.
const includeDirs = process.env.DNNL_INCLUDE_DIRS !== undefined ? process.env.DNNL_INCLUDE_DIRS.split(':').filter(Boolean) : ['/usr/include', '/usr/local/include', ...(process.env.DNNL_ROOT ? [path.join(process.env.DNNL_ROOT, 'include')] : [])];
if (!includeDirs.some((d) => fs.existsSync(path.join(d, 'oneapi', 'dnnl', 'dnnl.hpp')))) {
  finish(false, 'oneDNN headers not found (oneapi/dnnl/dnnl.hpp): install libdnnl-dev');
}

// node-gyp: the one npm ships (npm sets npm_config_node_gyp for lifecycle scripts), else the
// copy next to this Node's npm, else one on the module path.
function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  for (const c of candidates) if (c && fs.existsSync(c)) return c;
  try {
    return fileURLToPath(import.meta.resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    return null;
  }
}
const nodeGyp = findNodeGyp();
if (!nodeGyp) finish(false, 'node-gyp not found (it ships with npm)');

// Node's own headers: npm's nodedir setting, else the ones installed beside this Node (no
// download: node-gyp would otherwise fetch them from nodejs.org).
const args = [nodeGyp, 'rebuild'];
const localHeaders = path.resolve(path.dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && fs.existsSync(path.join(localHeaders, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${localHeaders}`);
if (!quiet) console.log(`native/onednn: building with ${nodeGyp} …`);
const res = spawnSync(process.execPath, args, { cwd: dir, encoding: 'utf8', timeout: 600_000, env: { ...process.env, JOBS: process.env.JOBS ?? '2' } });
if (res.error || res.status !== 0) {
  const log = `${res.stdout ?? ''}\n${res.stderr ?? ''}`;
  const errLine = log.split('\n').find((l) => /error|not found|No such file/i.test(l) && !/gyp ERR! (stack|System|command|cwd|node -v|node-gyp -v|not ok)/.test(l));
  fs.writeFileSync(path.join(dir, 'build.log'), log);
  finish(false, `node-gyp failed${res.error ? `: ${res.error.message}` : ` (exit ${res.status})`}${errLine ? `: ${errLine.trim().slice(0, 300)}` : ''}; full log in native/onednn/build.log`);
}

// Load it in a child process and run a tiny convolution.
const probe = spawnSync(
  process.execPath,
  [
    '-e',
    `const m={exports:{}};process.dlopen(m,process.argv[1]);const a=m.exports;const y=new Float32Array(4);` +
      `a.conv(1,new Float32Array([1,2,3,4,5,6,7,8,9]),new Float32Array([1,1,1,1]),y,[1,3,3,1,1,2,2,2,2,1,1,0,0,0,0]);` +
      `if(y.join()!=='12,16,24,28')throw new Error('wrong result '+y.join());process.stdout.write(JSON.stringify(a.info()));`,
    addon,
  ],
  { encoding: 'utf8', timeout: 60_000, env: { ...process.env, OMP_NUM_THREADS: '1' } },
);
if (probe.status !== 0) finish(false, `built, but the addon failed to load or compute: ${(probe.stderr || '').trim().split('\n').slice(-1)[0] || probe.signal}`);
const info = JSON.parse(probe.stdout);
finish(true, `oneDNN ${info.version} (${info.isa})`, { onednn: info.version, isa: info.isa });
