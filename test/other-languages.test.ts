/**
 * The .proto is the contract: an independent client in another language (Python, Debian's grpcio, message classes
 * built at run time from a protoc descriptor set) opens media and gets every packet's exact bytes.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { framemd5Copy, groupByStream } from './support/ffmpeg-reference';
import { ensureMedia } from './support/media';
import { REPO_ROOT } from './support/cli';
import { copyInto, scratchDir } from './support/tmp';
import { startServer, type TestServer } from './support/server';

function run(cmd: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    c.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    c.on('error', reject);
    c.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('other languages: a Python client from the .proto alone', function () {
  this.timeout(60_000);
  let srv: TestServer;
  let descriptors: string;

  before(async function () {
    srv = await startServer();
    descriptors = path.join(await scratchDir('py'), 'cuemux.pb');
    const protoc = spawnSync(path.join(REPO_ROOT, 'node_modules', '.bin', 'protoc'),
      ['--include_imports', `--descriptor_set_out=${descriptors}`, `-I${path.join(REPO_ROOT, 'proto')}`, 'cuemux/v1/media_server.proto'], { encoding: 'utf8' });
    assert.equal(protoc.status, 0, protoc.stderr);
  });
  after(async function () {
    await srv.stop();
  });

  for (const [name, ext] of [['mp4-h264-aac', '.mp4'], ['mkv-vp9-opus', '.mkv']] as const) {
    it(`${name}: Python receives every packet with FFmpeg's exact bytes, over ${ext === '.mp4' ? 'the Unix socket' : 'TCP'}`, async function () {
      const file = await ensureMedia(name);
      await copyInto(file, srv.root, `${name}${ext}`);
      const target = ext === '.mp4' ? `unix:${srv.socket}` : srv.tcp;
      // Asynchronously: the server runs in this process and must keep serving while Python runs.
      const r = await run('/usr/bin/python3', [path.join(REPO_ROOT, 'test', 'support', 'python_client.py'), descriptors, target, `${name}${ext}`]);
      assert.equal(r.status, 0, r.stderr);
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      const info = lines[0] as { streams: Array<{ codec_name: string; extradata: number }> };
      assert.ok(info.streams.length >= 2);
      const packets = lines.filter((l) => 'md5' in l) as Array<{ stream: number; md5: string }>;
      const reference = await framemd5Copy(file);
      assert.deepEqual(groupByStream(packets, (p) => p.md5), groupByStream(reference, (r) => r.md5));
      const err = lines[lines.length - 1] as { error: string; details: string };
      assert.equal(err.error, 'PERMISSION_DENIED');
      assert.match(err.details, /outside the served media roots/);
    });
  }
});
