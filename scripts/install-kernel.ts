/**
 * Registers the project's TypeScript kernel ("mixmask-ts") with Jupyter: in the project's own
 * .jupyter/ (used by `npm run notebooks`) and in the current user's kernel registry (so that
 * `jupyter lab` / `jupyter notebook` offer it), as root or as a normal user.
 */
import { spawnSync } from 'node:child_process';
import { KERNEL_NAME, PYTHON, checkJupyter, writeKernelSpec } from './jupyter';

function main(): void {
  checkJupyter();
  const local = writeKernelSpec();
  console.log(`kernel '${KERNEL_NAME}' written to ${local}`);
  const install = spawnSync(
    PYTHON,
    [
      '-c',
      'import sys; from jupyter_client.kernelspec import KernelSpecManager as K; print(K().install_kernel_spec(sys.argv[1], sys.argv[2], user=True, replace=True))',
      local,
      KERNEL_NAME,
    ],
    { encoding: 'utf8' },
  );
  if (install.status !== 0) throw new Error(`registering the kernel with Jupyter failed: ${install.stderr.trim()}`);
  console.log(`kernel '${KERNEL_NAME}' registered for this user at ${install.stdout.trim()}`);
}

try {
  main();
} catch (e) {
  console.error((e as Error).message);
  process.exit(1);
}
