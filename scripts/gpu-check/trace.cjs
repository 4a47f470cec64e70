// Preloaded with `node --require` by pack.sh: when this process (or any Node process it starts,
// which inherit NODE_OPTIONS, such as the Dawn probe) exits, writes the files it loaded
// (require.cache: JavaScript, JSON and native .node modules) to $GPU_CHECK_TRACE_DIR/<pid>.txt,
// so that the pack carries exactly the node_modules files the check needs.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const dir = process.env.GPU_CHECK_TRACE_DIR;
if (dir) {
  process.on('exit', () => {
    fs.writeFileSync(path.join(dir, `${process.pid}.txt`), Object.keys(require.cache).join('\n') + '\n');
  });
}
