#!/usr/bin/env node
'use strict';
/*
 * Applies cuemux's patch to beamcoder 0.7.1's native source and rebuilds it (runs at `npm ci` as postinstall).
 *
 * Why a patch and not a JavaScript work-around (each measured with FFmpeg 5.1; bytes checked against ffmpeg framemd5):
 *  - packet.cc getPacketData wraps the whole AVBufferRef instead of [packet->data, packet->data + size): wrong
 *    bytes for MKV (payload 4 bytes in) and MPEG-TS (buffer longer than the packet). Fixed at the root.
 *  - demux.cc gains readBatch(): many av_read_frame calls in one thread-pool job (native/beamcoder/cuemux_batch.cc).
 *  - The module gains cuemuxCopyPicture() and cuemuxReleaseFrame() (native/beamcoder/cuemux_frame.cc): a picture
 *    copied out without a Buffer per plane and its frame given back at once, so decoded pictures stop driving V8's
 *    external-memory mark-compacts (a player's decode worker paused 3-22 ms every 60-200 ms for them).
 *  - The AVBuffers made around JavaScript Buffers (packet and frame data set from JavaScript) no longer delete their
 *    napi_ref on whichever thread FFmpeg drops the last reference: packetBufferFree and frameBufferFree call
 *    cuemuxDeleteRef() (native/beamcoder/cuemux_release.cc), which queues the deletion to the environment's
 *    JavaScript thread from any other. Measured with gdb: 274 of 274 packet releases on thread-pool threads when
 *    av_interleaved_write_frame's queue held the last reference (test/native-release.test.ts), 10 of 1,439 when the
 *    preview muxer still interleaved; behind a `malloc_consolidate()` abort and a SIGSEGV in Node-API's teardown.
 *  - DEBUG printf()s go to stderr so that stdout stays clean for `cuemux index dump`/--json.
 *  - Two memory-safety bugs behind crashes on failed opens: rejectStatus() read the carrier after freeing it, and
 *    every async entry point raced the worker thread on c->status (see below).
 * Idempotent: a marker records the patch's hash; a matching marker plus a built addon means nothing to do.
 */
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawnSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const bc = path.join(root, 'node_modules', 'beamcoder');
const addonSrc = path.join(root, 'native', 'beamcoder', 'cuemux_batch.cc');
const frameSrc = path.join(root, 'native', 'beamcoder', 'cuemux_frame.cc');
const releaseSrc = path.join(root, 'native', 'beamcoder', 'cuemux_release.cc');
const marker = path.join(bc, '.cuemux-patch');
const built = path.join(bc, 'build', 'Release', 'beamcoder.node');

function log(msg) { process.stderr.write(`[cuemux patch-beamcoder] ${msg}\n`); }
function die(msg) { log(`ERROR: ${msg}`); process.exit(1); }

if (!fs.existsSync(path.join(bc, 'package.json'))) die(`beamcoder is not installed at ${bc}: run npm ci first.`);
const version = JSON.parse(fs.readFileSync(path.join(bc, 'package.json'), 'utf8')).version;
if (version !== '0.7.1') die(`this patch is written for beamcoder 0.7.1, found ${version}.`);

const addon = fs.readFileSync(addonSrc, 'utf8');
const frameAddon = fs.readFileSync(frameSrc, 'utf8');
const releaseAddon = fs.readFileSync(releaseSrc, 'utf8');
const patchHash = crypto.createHash('sha256').update(fs.readFileSync(__filename)).update(addon).update(frameAddon)
  .update(releaseAddon).digest('hex');
if (fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === patchHash && fs.existsSync(built)) {
  log('beamcoder already patched and built.');
  process.exit(0);
}

/** Replace exactly one occurrence of `from`, a string or a RegExp (or find `to` already there). */
function edit(file, from, to) {
  const p = path.join(bc, file);
  // beamcoder's sources have CRLF line ends: compare and write with LF.
  const text = fs.readFileSync(p, 'utf8').replace(/\r\n/g, '\n');
  if (text.includes(to)) return;
  const found = typeof from === 'string' ? text.split(from).length - 1 : (text.match(new RegExp(from.source, 'g')) ?? []).length;
  if (found !== 1) die(`${file}: expected exactly one "${String(from).slice(0, 60)}", found ${found}.`);
  fs.writeFileSync(p, text.replace(from, () => to));
}

fs.writeFileSync(path.join(bc, 'src', 'cuemux_batch.cc'), addon);
fs.writeFileSync(path.join(bc, 'src', 'cuemux_frame.cc'), frameAddon);
fs.writeFileSync(path.join(bc, 'src', 'cuemux_release.cc'), releaseAddon);
{
  // Our sources join beamcoder's (a tree patched by an older version of this script lists fewer of them).
  const gyp = path.join(bc, 'binding.gyp');
  const text = fs.readFileSync(gyp, 'utf8').replace(/\r\n/g, '\n');
  const ours = '"src/cuemux_batch.cc", "src/cuemux_frame.cc", "src/cuemux_release.cc" ]';
  const fixed = text.replace(/"src\/codec\.cc", "src\/hwcontext\.cc"(, "src\/cuemux_batch\.cc")?(, "src\/cuemux_frame\.cc")?(, "src\/cuemux_release\.cc")? \]/,
    `"src/codec.cc", "src/hwcontext.cc", ${ours}`);
  if (!fixed.includes(ours)) die('binding.gyp: expected its list of sources ending "src/hwcontext.cc" ].');
  fs.writeFileSync(gyp, fixed);
}
edit('src/beamcoder.cc', 'napi_value Init(napi_env env, napi_value exports) {\n',
  'void cuemuxFrameInit(napi_env env, napi_value exports);\n\nnapi_value Init(napi_env env, napi_value exports) {\n');
// (Each edit's result stays in the text after those that follow, so that none applies twice.)
edit('src/beamcoder.cc', 'void cuemuxFrameInit(napi_env env, napi_value exports);\n',
  'bool cuemuxReleaseInit(napi_env env, napi_value exports);\nvoid cuemuxFrameInit(napi_env env, napi_value exports);\n');
edit('src/beamcoder.cc', '  } while (codec != nullptr);\n  return exports;\n',
  '  } while (codec != nullptr);\n  cuemuxFrameInit(env, exports);\n  return exports;\n');
// First in Init: the environment is registered before anything of it can make a buffer (a failure throws from require).
edit('src/beamcoder.cc', 'napi_value Init(napi_env env, napi_value exports) {\n',
  'napi_value Init(napi_env env, napi_value exports) {\n  if (!cuemuxReleaseInit(env, exports)) return nullptr;\n');
// FFmpeg calls these when the last reference to a buffer wrapping a JavaScript Buffer goes, on whichever thread drops
// it (see native/beamcoder/cuemux_release.cc): Node-API only through cuemuxDeleteRef. Whole functions, matched in
// beamcoder's text and in that of a tree patched before (its DEBUG printf already fprintf).
edit('src/packet.cc', /void packetBufferFree\(void\* opaque, uint8_t\* data\) \{\n[^}]*\n\}\n/,
  `void cuemuxDeleteRef(napi_env env, napi_ref ref); // cuemux_release.cc
void packetBufferFree(void* opaque, uint8_t* data) {
  avBufRef* avr = (avBufRef*) opaque;
  cuemuxDeleteRef(avr->env, avr->ref); // cuemux: often on a thread-pool thread (a muxer's interleaving queue)
  delete avr;
}
`);
edit('src/frame.cc', /void frameBufferFree\(void\* opaque, uint8_t\* data\) \{\n[^}]*\n\}\n/,
  `void cuemuxDeleteRef(napi_env env, napi_ref ref); // cuemux_release.cc
void frameBufferFree(void* opaque, uint8_t* data) {
  avBufRef* avr = (avBufRef*) opaque;
  cuemuxDeleteRef(avr->env, avr->ref); // cuemux: often on a thread-pool or FFmpeg frame thread
  delete avr;
}
`);
edit('src/packet.cc',
  `    hintRef = av_buffer_ref(p->packet->buf);
    status = napi_create_external_buffer(env, hintRef->size, hintRef->data,`,
  `    hintRef = av_buffer_ref(p->packet->buf);
    // cuemux: exactly this packet's bytes, not the whole underlying buffer.
    status = napi_create_external_buffer(env, p->packet->size, p->packet->data,`);
edit('src/demux.cc', '#include "demux.h"\n', '#include "demux.h"\nnapi_value cuemuxReadBatch(napi_env env, napi_callback_info info);\n');
edit('src/demux.cc',
  `  c->status = napi_set_named_property(env, result, "forceClose", prop);
  REJECT_STATUS;
`,
  `  c->status = napi_set_named_property(env, result, "forceClose", prop);
  REJECT_STATUS;

  c->status = napi_create_function(env, "readBatch", NAPI_AUTO_LENGTH, cuemuxReadBatch,
    nullptr, &prop);
  REJECT_STATUS;
  c->status = napi_set_named_property(env, result, "readBatch", prop);
  REJECT_STATUS;
`);
// rejectStatus() deletes the carrier (tidyCarrier) and then returns c->status from freed memory: when that reads
// as 0 the caller continues as if successful (seen: a failed open crashing in fromAVFormatContext ~30% of runs).
edit('src/beamcoder_util.cc',
  `int32_t rejectStatus(napi_env env, carrier* c, char* file, int32_t line) {
  if (c->status != BEAMCODER_SUCCESS) {`,
  `int32_t rejectStatus(napi_env env, carrier* c, char* file, int32_t line) {
  const int32_t result = c->status; // cuemux: read before tidyCarrier() frees c
  if (c->status != BEAMCODER_SUCCESS) {`);
edit('src/beamcoder_util.cc',
  `    delete[] extMsg;
    tidyCarrier(env, c);
  }
  return c->status;
}`,
  `    free(extMsg); // cuemux: allocated with malloc
    tidyCarrier(env, c);
  }
  return result;
}`);
for (const f of fs.readdirSync(path.join(bc, 'src')).filter((n) => n.endsWith('.cc'))) {
  const p = path.join(bc, 'src', f);
  const text = fs.readFileSync(p, 'utf8');
  const fixed = text.replace(/(^|[^f])printf\("DEBUG/g, '$1fprintf(stderr, "DEBUG')
    // `c->status = napi_queue_async_work(...)` runs on the JS thread after the work is queued: when the worker has
    // already failed and set c->status, the assignment overwrites the error with napi_ok, and the completion then
    // uses a context that does not exist (seen: failed opens crashing in fromAVFormatContext ~20% of runs).
    // Once queued, the carrier belongs to the worker: only a failed queue may be rejected here.
    .replace(/c->status = napi_queue_async_work\(env, c->_request\);\s*REJECT_RETURN;/g,
      '{ napi_status queued = napi_queue_async_work(env, c->_request); // cuemux: no race on c->status\n' +
      '    if (queued != napi_ok) { c->status = queued; REJECT_RETURN; } }');
  if (fixed !== text) fs.writeFileSync(p, fixed);
}

const candidates = [
  process.env.npm_config_node_gyp,
  path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].filter(Boolean);
const nodeGyp = candidates.find((c) => fs.existsSync(c));
if (!nodeGyp) die(`node-gyp not found (looked in ${candidates.join(', ')}).`);
log('rebuilding beamcoder with the cuemux patch (about a minute)...');
const jobs = String(Math.max(1, require('node:os').availableParallelism?.() ?? 2));
// Build against Node's own headers: nothing may be downloaded at install time.
const prefix = path.resolve(path.dirname(process.execPath), '..');
const nodedir = process.env.npm_config_nodedir
  || (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined);
const gypArgs = [nodeGyp, 'rebuild', '-j', jobs, ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
const r = spawnSync(process.execPath, gypArgs, { cwd: bc, stdio: ['ignore', 'inherit', 'inherit'] });
if (r.status !== 0) die('node-gyp rebuild failed: are the FFmpeg -dev packages installed? (scripts/setup.sh installs them)');
// Record FFmpeg's versions next to the addon: cuemux checks index freshness against libavformat's version without
// loading FFmpeg (its ~200 shared libraries cost ~40 MB of RSS and ~70 ms in every process that maps them).
const probe = spawnSync(process.execPath, ['-e',
  `const b = require(${JSON.stringify(built)}); process.stdout.write(JSON.stringify({ versions: b.versions(), info: b.avVersionInfo() }))`],
  { encoding: 'utf8' });
if (probe.status !== 0) die(`the rebuilt addon does not load: ${probe.stderr}`);
fs.writeFileSync(path.join(bc, 'build', 'Release', 'cuemux-ffmpeg-versions.json'), probe.stdout);
fs.writeFileSync(marker, patchHash);
log('done.');
