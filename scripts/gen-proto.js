#!/usr/bin/env node
/*
  Regenerate the TypeScript gRPC bindings in src/generated from proto/ (npm run gen).

  Runs `buf generate` (buf.gen.yaml: the local ts-proto plugin from node_modules, no remote plugins) with the buf
  binary installed by the @bufbuild/buf npm package. src/generated is deleted first so files of removed protos do
  not linger. Generated files are never edited by hand. Progress goes to stderr; exits non-zero on failure.
*/
'use strict';

const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const outDir = path.join(root, 'src', 'generated');
const exe = process.platform === 'win32' ? '.cmd' : '';
const buf = path.join(root, 'node_modules', '.bin', `buf${exe}`);
const plugin = path.join(root, 'node_modules', '.bin', `protoc-gen-ts_proto${exe}`);

function log(message) {
  process.stderr.write(`gen-proto: ${message}\n`);
}

function fail(message) {
  process.stderr.write(`gen-proto: error: ${message}\n`);
  process.exit(1);
}

function main() {
  const started = process.hrtime.bigint();
  for (const [file, pkg] of [[buf, '@bufbuild/buf'], [plugin, 'ts-proto']]) {
    if (!fs.existsSync(file)) fail(`${path.relative(root, file)} not found: install dev dependencies (${pkg}) with npm ci`);
  }
  for (const file of ['buf.yaml', 'buf.gen.yaml']) {
    if (!fs.existsSync(path.join(root, file))) fail(`${file} not found in ${root}`);
  }

  log(`removing ${path.relative(root, outDir)}/`);
  fs.rmSync(outDir, { recursive: true, force: true });

  const args = ['generate', '--template', 'buf.gen.yaml'];
  log(`running ${path.relative(root, buf)} ${args.join(' ')}`);
  const result = spawnSync(buf, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.error) fail(`could not run ${path.relative(root, buf)}: ${result.error.message}`);
  if (result.signal) fail(`buf generate was killed by ${result.signal}`);
  if (result.status !== 0) fail(`buf generate failed with exit code ${result.status} (see the messages above)`);

  const files = [];
  const walk = (dir) => {
    if (!fs.existsSync(dir)) return;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else files.push(path.relative(root, full));
    }
  };
  walk(outDir);
  if (files.length === 0) fail(`buf generate wrote nothing to ${path.relative(root, outDir)}/`);
  files.sort();
  for (const file of files) log(`wrote ${file}`);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  log(`done: ${files.length} file(s) in ${ms.toFixed(0)} ms`);
}

main();
