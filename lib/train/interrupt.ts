/**
 * Ctrl-C / Kernel → Interrupt for long work started from a notebook or a script.
 *
 * A Jupyter interrupt is a SIGINT to the kernel process. The TypeScript kernel (tslab) answers it
 * by abandoning the cell's promise ("Interrupted asynchronously") while the work goes on in the
 * background, still writing its run folder. While `interruptible(fn)` runs, SIGINT is ours
 * instead: it aborts the signal handed to `fn`, which stops at its next step boundary (the
 * trainer saves a checkpoint there), and the other SIGINT listeners are restored afterwards. So
 * the cell ends when the work has really stopped, and re-running it resumes.
 */
export class InterruptedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InterruptedError';
    // One line in a notebook: where it stopped and how to go on, not a stack trace of the library.
    this.stack = `${this.name}: ${message}`;
  }
}

export async function interruptible<T>(fn: (signal: AbortSignal) => Promise<T>, outer?: AbortSignal): Promise<T> {
  const controller = new AbortController();
  const onOuter = () => controller.abort(outer?.reason);
  if (outer?.aborted) controller.abort(outer.reason);
  else outer?.addEventListener('abort', onOuter, { once: true });
  // tslab runs the synchronous part of each cell under vm's breakOnSigint, whose watchdog puts
  // back the SIGINT disposition it found when that part ends: a listener added meanwhile stays
  // registered in JavaScript but no longer catches the signal, and Kernel → Interrupt kills the
  // kernel. Taking SIGINT over on the next turn of the event loop, after that part, avoids it
  // (removing every listener first makes Node install its signal handler afresh).
  await new Promise<void>((resolve) => setImmediate(resolve));
  const others = process.listeners('SIGINT');
  const onSigint = () => {
    if (controller.signal.aborted) return; // a second interrupt while stopping: the step still finishes
    controller.abort(new InterruptedError('interrupted'));
  };
  process.removeAllListeners('SIGINT');
  process.on('SIGINT', onSigint);
  try {
    return await fn(controller.signal);
  } finally {
    process.removeListener('SIGINT', onSigint);
    for (const l of others) process.on('SIGINT', l as NodeJS.SignalsListener);
    outer?.removeEventListener('abort', onOuter);
  }
}
