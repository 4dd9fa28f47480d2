#!/usr/bin/env node
'use strict';
/*
 * Builds cuemux's own N-API addons with node-gyp, against Node's own headers and Debian's -dev packages: nothing is
 * downloaded. Runs at `npm ci` (postinstall) and from scripts/setup.sh. Idempotent: a marker per addon records the
 * hash of its sources (its folder's and native/common's). An addon whose library headers are missing (pkg-config
 * fails) fails the run, naming the Debian package to install (exit 3, after building the others); at `npm ci`
 * (postinstall) it is skipped with the same message and exit 0 instead: everything but that output works, and
 * scripts/setup.sh installs the package and runs this again.
 *   node scripts/build-addons.js [jack|sdl|alsa|pipewire|sched ...]   (default: all)
 */
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawnSync } = require('node:child_process');

/** The addons: folder under native/, pkg-config name, Debian package, the export that proves it loads, what needs it. */
const ADDONS = {
  jack: { pkg: 'jack', deb: 'libjack-jackd2-dev', symbol: 'JackClient', what: 'the JACK addon', needs: 'play-audio --device jack' },
  sdl: { pkg: 'sdl2', deb: 'libsdl2-dev', symbol: 'SdlWindow', what: 'the SDL window addon', needs: 'play-video --window' },
  alsa: { pkg: 'alsa', deb: 'libasound2-dev', symbol: 'AlsaPcm', what: 'the ALSA addon', needs: 'play-audio --device alsa:NAME' },
  // No library: Node's headers and libc only.
  sched: { pkg: null, deb: '', symbol: 'setScheduling', what: 'the scheduling addon', needs: 'the presenting thread\'s real-time guard (play-audio, play-video)' },
  // The JACK addon's source linked to PipeWire's libjack (rpath): a JACK client of a PipeWire graph, without pw-jack.
  pipewire: {
    pkg: 'jack', deb: 'libjack-jackd2-dev pipewire-jack', symbol: 'JackClient', what: 'the PipeWire (JACK API) addon', needs: 'play-audio --device pipewire',
    sources: ['../jack/cuemux_jack.cc'], lib: 'pipewire-0.3/jack/libjack.so.0',
  },
};
/** Headers every addon includes (native/common): a change rebuilds them all. */
const COMMON = ['napi-helpers.h', 'frame-ring.h'];
/** Addons skipped because their -dev package is missing. */
const missing = [];

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
  for (const f of ['binding.gyp', ...(a.sources ?? [`cuemux_${name}.cc`]), ...COMMON.map((c) => path.join('..', 'common', c))]) hash.update(fs.readFileSync(path.join(dir, f)));
  const sources = hash.digest('hex');
  if (fs.existsSync(built) && fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === sources) {
    log(`${a.what} is built.`);
    return;
  }
  const libDirs = ['/usr/lib', '/usr/lib64', ...(fs.existsSync('/usr/lib') ? fs.readdirSync('/usr/lib').map((d) => path.join('/usr/lib', d)) : [])];
  if ((a.pkg !== null && spawnSync('pkg-config', ['--exists', a.pkg]).status !== 0) || (a.lib !== undefined && !libDirs.some((d) => fs.existsSync(path.join(d, a.lib))))) {
    log(`${postinstall ? '' : 'ERROR: '}${a.pkg} headers${a.lib === undefined ? '' : ` or ${a.lib}`} not found: install the Debian package(s) ${a.deb} (scripts/setup.sh does); until then ${a.needs} is unavailable.`);
    missing.push(a.deb);
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

/** At `npm ci`: a missing -dev package must not fail the install of everything else. */
const postinstall = process.env.npm_lifecycle_event === 'postinstall';
const wanted = process.argv.slice(2);
for (const name of wanted.length > 0 ? wanted : Object.keys(ADDONS)) build(name);
if (missing.length > 0 && !postinstall) {
  log(`ERROR: not built for want of ${missing.join(', ')} (apt-get install ${missing.join(' ')}).`);
  process.exit(3);
}
