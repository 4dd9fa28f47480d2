#!/usr/bin/env node
'use strict';
// Thin launcher: the CLI is compiled to dist/ by `npm run build` (scripts/setup.sh runs it).
let main;
try {
  ({ main } = require('../dist/src/cli/main.js'));
} catch (e) {
  process.stderr.write(`cuemux: not built yet (${e.code || e.message}); run: bash scripts/setup.sh\n`);
  process.exit(1);
}
main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
