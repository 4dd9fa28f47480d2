#!/usr/bin/env node
'use strict';
/*
 * Builds cuemux's own N-API addons with node-gyp, against Node's own headers and Debian's -dev packages: nothing is
 * downloaded. Runs at `npm ci` (postinstall) and from scripts/setup.sh. Idempotent: a marker per addon records the
 * hash of its sources. An addon whose library headers are missing (pkg-config fails) is skipped with a message and
 * exit 0: everything but that output works, and scripts/setup.sh installs the package and builds again.
 *   node scripts/build-addons.js [jack|sdl ...]   (default: all)
 */
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawnSync } = require('node:child_process');

/** The addons: folder under native/, pkg-config name, Debian package, the export that proves it loads, what needs it. */
const ADDONS = {
  jack: { pkg: 'jack', deb: 'libjack-jackd2-dev', symbol: 'JackClient', what: 'the JACK addon', needs: 'play-audio --device jack' },
  sdl: { pkg: 'sdl2', deb: 'libsdl2-dev', symbol: 'SdlWindow', what: 'the SDL window addon', needs: 'play-video --window' },
};

function log(msg) { process.stderr.write(`[cuemux build-addons] ${msg}\n`); }

function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ].filter(Boolean);
  const found = candidates.find((c) => fs.existsSync(c));
  if (!found) { log(`ERROR: node-gyp not found (looked in ${candidates.join(', ')}).`); process.exit(1); }
  return found;
}

function build(name) {
  const a = ADDONS[name];
  if (a === undefined) { log(`ERROR: no addon "${name}" (known: ${Object.keys(ADDONS).join(', ')}).`); process.exit(2); }
  const dir = path.resolve(__dirname, '..', 'native', name);
  const built = path.join(dir, 'build', 'Release', `cuemux_${name}.node`);
  const marker = path.join(dir, 'build', '.cuemux-sources');
  const hash = crypto.createHash('sha256');
  for (const f of ['binding.gyp', `cuemux_${name}.cc`]) hash.update(fs.readFileSync(path.join(dir, f)));
  const sources = hash.digest('hex');
  if (fs.existsSync(built) && fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === sources) {
    log(`${a.what} is built.`);
    return;
  }
  if (spawnSync('pkg-config', ['--exists', a.pkg]).status !== 0) {
    log(`${a.pkg} headers not found (Debian: ${a.deb}; scripts/setup.sh installs it): ${a.needs} is unavailable.`);
    return;
  }
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  const nodedir = process.env.npm_config_nodedir
    || (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined);
  log(`building ${a.what}...`);
  const r = spawnSync(process.execPath, [nodeGyp(), 'rebuild', ...(nodedir ? [`--nodedir=${nodedir}`] : [])], { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) { log(`ERROR: node-gyp rebuild of native/${name} failed.`); process.exit(1); }
  const probe = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(built)}).${a.symbol}`], { encoding: 'utf8' });
  if (probe.status !== 0) { log(`ERROR: ${a.what} does not load: ${probe.stderr}`); process.exit(1); }
  fs.writeFileSync(marker, sources);
  log(`${a.what}: done.`);
}

const wanted = process.argv.slice(2);
for (const name of wanted.length > 0 ? wanted : Object.keys(ADDONS)) build(name);
