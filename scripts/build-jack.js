#!/usr/bin/env node
'use strict';
/*
 * Builds cuemux's JACK addon (native/jack: play-audio --device jack and the device tests' recorder) with node-gyp,
 * against Node's own headers and Debian's libjack-jackd2-dev: nothing is downloaded. Runs at `npm ci` (postinstall)
 * and from scripts/setup.sh. Idempotent: a marker records the sources' hash.
 * Without JACK's headers (pkg-config jack fails) it says so and exits 0: everything but --device jack works, and
 * scripts/setup.sh installs them and builds again.
 */
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawnSync } = require('node:child_process');

const dir = path.resolve(__dirname, '..', 'native', 'jack');
const built = path.join(dir, 'build', 'Release', 'cuemux_jack.node');
const marker = path.join(dir, 'build', '.cuemux-sources');

function log(msg) { process.stderr.write(`[cuemux build-jack] ${msg}\n`); }

const hash = crypto.createHash('sha256');
for (const f of ['binding.gyp', 'cuemux_jack.cc']) hash.update(fs.readFileSync(path.join(dir, f)));
const sources = hash.digest('hex');
if (fs.existsSync(built) && fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === sources) {
  log('the JACK addon is built.');
  process.exit(0);
}
if (spawnSync('pkg-config', ['--exists', 'jack']).status !== 0) {
  log('JACK headers not found (Debian: libjack-jackd2-dev; scripts/setup.sh installs it): play-audio --device jack is unavailable.');
  process.exit(0);
}
const candidates = [
  process.env.npm_config_node_gyp,
  path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].filter(Boolean);
const nodeGyp = candidates.find((c) => fs.existsSync(c));
if (!nodeGyp) { log(`ERROR: node-gyp not found (looked in ${candidates.join(', ')}).`); process.exit(1); }
const prefix = path.resolve(path.dirname(process.execPath), '..');
const nodedir = process.env.npm_config_nodedir
  || (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined);
log('building the JACK addon...');
const r = spawnSync(process.execPath, [nodeGyp, 'rebuild', ...(nodedir ? [`--nodedir=${nodedir}`] : [])], { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'] });
if (r.status !== 0) { log('ERROR: node-gyp rebuild of native/jack failed.'); process.exit(1); }
const probe = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(built)}).JackClient`], { encoding: 'utf8' });
if (probe.status !== 0) { log(`ERROR: the JACK addon does not load: ${probe.stderr}`); process.exit(1); }
fs.writeFileSync(marker, sources);
log('done.');
