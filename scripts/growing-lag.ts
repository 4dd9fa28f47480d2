/**
 * How far a growing file's index trails its writer, and how long after the writer ends the index is final:
 * `node dist/scripts/growing-lag.js MEDIA [GROWING_WAIT_MS]` writes 10 s of MEDIA (stream copy) to a Matroska file
 * in the OS temp folder with `ffmpeg -re -flush_packets 1 -cluster_time_limit 100`, follows it with a GrowingIndex,
 * and prints the lag of the index's last video packet behind the writer's clock (p50/p99/max, seconds, sampled at
 * every growth) and the time from the writer's exit to the final index. A measurement, not a benchmark: the peer for
 * item 5 of issue 15 (bench:progressive) is still to come.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GrowingIndex } from '../src/index-store/growing-index';

async function main(): Promise<void> {
  const [source, wait] = process.argv.slice(2);
  if (source === undefined) throw new Error('usage: growing-lag MEDIA [GROWING_WAIT_MS]');
  const waitMs = Number(wait ?? 5000);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cuemux-growing-lag-'));
  const out = path.join(dir, 'lag.mkv');
  const writer = spawn('ffmpeg', ['-v', 'error', '-nostdin', '-re', '-i', source, '-t', '10', '-map', '0', '-c', 'copy', '-flush_packets', '1',
    '-cluster_time_limit', '100', '-f', 'matroska', out], { stdio: 'ignore' });
  let exited: number | null = null;
  writer.on('exit', () => { exited = performance.now(); });
  while (!existsSync(out) || statSync(out).size === 0) await new Promise((r) => setTimeout(r, 5));
  const t0 = performance.now();
  const g = await GrowingIndex.start(out, { waitMs, cacheDir: path.join(dir, 'cache') });
  const video = g.index.streams.find((s) => s.codecType === 'video')?.index ?? 0;
  const lags: number[] = [];
  while (g.state === 'growing') {
    await g.waitForChange(60_000);
    const last = g.index.lastTime(video);
    if (last !== null && exited === null) lags.push((performance.now() - t0) / 1000 - g.index.toSeconds(video, last));
  }
  const final = await g.done;
  const done = performance.now();
  lags.sort((a, b) => a - b);
  const p = (q: number): string => (lags[Math.min(lags.length - 1, Math.floor(q * lags.length))] ?? NaN).toFixed(3);
  process.stdout.write(`growing-wait-ms ${waitMs}: index behind the writer's clock p50 ${p(0.5)} s, p99 ${p(0.99)} s, max ${p(1)} s (${lags.length} growths); `
    + `writer exit -> final index ${(((done - (exited ?? done)) / 1000)).toFixed(2)} s; ${final.packetCount} packets\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${String(e)}\n`);
  process.exitCode = 1;
});
