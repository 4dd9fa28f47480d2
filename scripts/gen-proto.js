#!/usr/bin/env node
/*
  Regenerate the TypeScript gRPC bindings in src/generated from proto/ (npm run gen).

  Runs protoc from the `protoc` npm package (its binaries ship inside the package: nothing is downloaded) with the
  ts-proto plugin from node_modules. Why not buf: this registry carries only buf's Linux binaries, so no lockfile
  can list all of @bufbuild/buf's optional platform packages and `npm ci` rejects the one it can make.
  src/generated is deleted first so files of removed protos do not linger. Generated files are never edited by hand.
  Progress goes to stderr; exits non-zero on failure.
*/
'use strict';

const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const outDir = path.join(root, 'src', 'generated');
const exe = process.platform === 'win32' ? '.cmd' : '';
const protoc = path.join(root, 'node_modules', '.bin', `protoc${exe}`);
const protoDir = path.join(root, 'proto');
/** ts-proto options: grpc-js services, Node Buffers, int64 as bigint (AV_NOPTS_VALUE is -2^63). */
const OPTIONS = 'outputServices=grpc-js,env=node,esModuleInterop=true,oneof=unions-value,useOptionals=messages,forceLong=bigint';
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
  for (const [file, pkg] of [[protoc, 'protoc'], [plugin, 'ts-proto']]) {
    if (!fs.existsSync(file)) fail(`${path.relative(root, file)} not found: install dev dependencies (${pkg}) with npm ci`);
  }
  const protos = [];
  const findProtos = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) findProtos(full);
      else if (entry.name.endsWith('.proto')) protos.push(path.relative(protoDir, full));
    }
  };
  findProtos(protoDir);
  protos.sort();
  if (protos.length === 0) fail(`no .proto files under ${path.relative(root, protoDir)}/`);

  log(`removing ${path.relative(root, outDir)}/`);
  fs.rmSync(outDir, { recursive: true, force: true });

  fs.mkdirSync(outDir, { recursive: true });
  const args = [`--plugin=protoc-gen-ts_proto=${plugin}`, `--ts_proto_out=${outDir}`, `--ts_proto_opt=${OPTIONS}`,
    `--proto_path=${protoDir}`, ...protos];
  log(`running protoc (${path.relative(root, protoc)}) with ts-proto on ${protos.join(', ')}`);
  const result = spawnSync(protoc, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.error) fail(`could not run ${path.relative(root, protoc)}: ${result.error.message}`);
  if (result.signal) fail(`protoc was killed by ${result.signal}`);
  if (result.status !== 0) fail(`protoc failed with exit code ${result.status} (see the messages above)`);

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
  if (files.length === 0) fail(`protoc wrote nothing to ${path.relative(root, outDir)}/`);
  files.sort();
  for (const file of files) log(`wrote ${file}`);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  log(`done: ${files.length} file(s) in ${ms.toFixed(0)} ms`);
}

main();
