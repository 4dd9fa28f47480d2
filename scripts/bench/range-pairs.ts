/**
 * bench:progressive's /media client: a process of its own that sends pairs of the same random 64 KiB range request
 * to two HTTP servers (ours and the static peer), alternating which goes first, and prints the time to each one's
 * first body byte as one JSON line `{"a":[ms...],"b":[ms...]}`. Run as
 * `node dist/scripts/bench/range-pairs.js ADDRESS_A ADDRESS_B PATH SIZE PAIRS`.
 *
 * Why a process of its own: measured from bench:progressive's own process (which by then holds the run's packets,
 * HTTP chunks and logs), the pairs on a finished file had p50 0.8-1.0 ms and p99 6-9 ms for both servers alike
 * (session 16, six runs); from a small process like this one, the same servers on the same file had p50 0.5 ms and
 * p99 2.5-3.0 ms (session 17). The client's own pauses land on whichever request is in flight and hid the servers'
 * difference at the tail under the client's.
 */
import { httpGet } from './http-client';

/** The first-byte times (ms) of `pairs` pairs of the same random 64 KiB range of `path` (`size` bytes) on `a` and `b`. */
export async function rangePairs(a: string, b: string, path: string, size: number, pairs: number): Promise<{ a: number[]; b: number[] }> {
  const out = { a: [] as number[], b: [] as number[] };
  const span = 64 << 10;
  for (let i = 0; i < pairs; i++) {
    const at = Math.floor(Math.random() * Math.max(1, size - span));
    const range = { headers: { range: `bytes=${at}-${at + span - 1}` } };
    // Alternating which goes first: neither always meets a cold cache or a busy moment first.
    const order: Array<'a' | 'b'> = i % 2 === 0 ? ['a', 'b'] : ['b', 'a'];
    for (const k of order) {
      const r = await httpGet(k === 'a' ? a : b, path, range);
      if (r.status !== 206) throw new Error(`${k === 'a' ? a : b}${path} answered ${r.status} to a range`);
      out[k].push(r.firstByteMs);
    }
  }
  return out;
}

if (require.main === module) {
  const [a, b, path, size, pairs] = process.argv.slice(2);
  rangePairs(a, b, path, Number(size), Number(pairs)).then((r) => {
    process.stdout.write(`${JSON.stringify(r)}\n`);
  }, (e: unknown) => {
    process.stderr.write(`range-pairs: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
