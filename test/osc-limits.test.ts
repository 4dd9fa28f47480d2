/**
 * OSC show control under hostile senders (issue 12, hole 3): real `cuemux serve` processes, real UDP. Ad-hoc cue
 * floods and far-future bundle floods are refused with RESOURCE_EXHAUSTED once their budget is reached and the
 * server's RSS stays bounded; a bundle of 64 status requests gets at most 16 replies; a sender outside the
 * allow-list (another network namespace, over a veth pair) is ignored while an allowed one is served; per-sender
 * message budgets drop and count a flood; beyond the prefetch budget a cue loads without a prefetch; /cuemux/status
 * with 300 loaded cues is paged into replies of one datagram.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { goClip1080, minuteClip } from './support/media';
import { bundleAt, encode, OscPeer, type Reply } from './support/osc';
import { spawnServer } from './support/server';
import { copyInto, scratchDir } from './support/tmp';
import { waitFor } from './support/wait';

const run = promisify(execFile);

type Served = Awaited<ReturnType<typeof spawnServer>>;

/** Resident set size of `pid`, in bytes. */
async function rss(pid: number): Promise<number> {
  const status = await fsp.readFile(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  if (m === null) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** What /cuemux/status reports of the OSC endpoint (absent on a server without limits). */
interface OscStatus {
  osc?: { dropped: { notAllowed: number; overBudget: number; overBudgetMessages: number; scheduleRefused: number }; repliesNotSent: number; scheduled: number };
  cues: Array<{ id: string }>;
  cueCount?: number;
  next?: number | null;
}

/** Poll `probe` until it gives a value, for at most `timeoutMs` (the tests' one waitFor, every 100 ms). */
function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> {
  return waitFor(what, probe, timeoutMs, 100);
}

describe('OSC limits: allow-list, budgets, bounded state and replies', function () {
  this.timeout(600_000);
  const children: ChildProcess[] = [];
  const peers: OscPeer[] = [];
  let root: string;

  const serve = async (args: string[]): Promise<Served> => {
    const runDir = await scratchDir('osc-limits-run');
    await fsp.chmod(runDir, 0o700);
    const s = await spawnServer(['--socket', path.join(runDir, 's.sock'), '--media-root', root, '--state-file', 'none', ...args]);
    children.push(s.child);
    return s;
  };
  const peer = async (): Promise<OscPeer> => {
    const p = await OscPeer.open();
    peers.push(p);
    return p;
  };

  before(async function () {
    root = await scratchDir('osc-limits-root');
    await copyInto(await goClip1080(), root, 'big.mp4');
    await copyInto(await minuteClip(), root, 'act-1-scene-3-storm-sequence-with-lightning-background-loop-v2.mp4');
  });

  afterEach(async function () {
    for (const p of peers.splice(0)) p.close();
    for (const c of children.splice(0)) {
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGKILL');
        await once(c, 'exit');
      }
    }
  });

  it('3,000 ad-hoc /cuemux/cue/load: RESOURCE_EXHAUSTED after 64 cues, and RSS stays bounded', async function () {
    const s = await serve([]);
    const port = s.oscPort as number;
    const p = await peer();
    // Warm up (media open, index built) and measure the baseline with one cue loaded and unloaded.
    assert.equal((await p.request(port, '/cuemux/cue/load', [{ type: 's', value: 'warm' }, { type: 's', value: 'big.mp4' }], 60_000)).status, 'ok');
    assert.equal((await p.request(port, '/cuemux/cue/unload', [{ type: 's', value: 'warm' }], 60_000)).status, 'ok');
    const base = await rss(s.child.pid as number);
    const replies: Reply[] = [];
    const total = 3000;
    const window = 50;
    for (let i = 0; i < total; i += window) {
      for (let k = i; k < i + window; k++) await p.send(port, '/cuemux/cue/load', [{ type: 's', value: `adhoc-${k}` }, { type: 's', value: 'big.mp4' }]);
      for (let k = i; k < i + window; k++) replies.push(await p.reply('/cuemux/reply/cue/load', 60_000));
      await sleep(30); // well under the default 2000 messages/s: this test is about the cue budget, not the rate
    }
    const after = await rss(s.child.pid as number);
    const grownMb = (after - base) / 2 ** 20;
    // What 64 cues hold (their prefetched second of 1080p, as the status reports it; 0 on a server without the
    // budget), twice over for the allocator, plus 64 MB: 3,000 cues would hold 3,000 prefetches.
    // (A server without limits sends no status at all here: 3,000 cues do not fit a datagram.)
    const st = await p.request(port, '/cuemux/status', [], 20_000).then((r) => r.data as { budgets?: { prefetch: { bytes: number } } }, () => null);
    const prefetchMb = (st?.budgets?.prefetch.bytes ?? 0) / 2 ** 20;
    process.stdout.write(`      server RSS ${(base / 2 ** 20).toFixed(1)} -> ${(after / 2 ** 20).toFixed(1)} MB after ${total} ad-hoc loads (${prefetchMb.toFixed(1)} MB prefetched)\n`);
    assert.ok(grownMb < 2 * prefetchMb + 64, `RSS grew by ${grownMb.toFixed(1)} MB (from ${(base / 2 ** 20).toFixed(1)} MB); the cues hold ${prefetchMb.toFixed(1)} MB of prefetch`);
    const ok = replies.filter((r) => r.status === 'ok');
    const refused = replies.filter((r) => r.status === 'error');
    assert.equal(ok.length, 64, `64 ad-hoc cues are loaded (got ${ok.length} ok replies)`);
    assert.equal(refused.length, total - 64);
    for (const r of refused) {
      assert.equal(r.code, 'RESOURCE_EXHAUSTED', JSON.stringify(r));
      assert.match(r.error ?? '', /64 ad-hoc cues are loaded, the budget \(--max-adhoc-cues 64\)/);
    }
    // Unloading one frees a place in the budget.
    assert.equal((await p.request(port, '/cuemux/cue/unload', [{ type: 's', value: 'adhoc-0' }], 60_000)).status, 'ok');
    assert.equal((await p.request(port, '/cuemux/cue/load', [{ type: 's', value: 'again' }, { type: 's', value: 'big.mp4' }], 60_000)).status, 'ok');
  });

  it('10,000 far-future bundles: RESOURCE_EXHAUSTED after 1,024 queued, RSS bounded, a console is still served', async function () {
    const s = await serve([]);
    const port = s.oscPort as number;
    const p = await peer();
    assert.equal((await p.request(port, '/cuemux/thump')).status, 'ok');
    const base = await rss(s.child.pid as number);
    const in23h = (BigInt(Date.now()) + 23n * 3600n * 1000n) * 1_000_000n;
    const filler = 'x'.repeat(400);
    const total = 10_000;
    const window = 100;
    // Every bundle after the 1,024th is refused with a reply (the first 1,024 wait silently for their time). Each
    // window ends with an untimed /cuemux/clock/fps: its reply comes after the window's refusals (replies keep their
    // order), which are collected then, so no socket buffer overflows.
    const refused: Reply[] = [];
    for (let sent = 0; sent < total; sent += window) {
      for (let k = sent; k < sent + window; k++) {
        await p.sendRaw(port, bundleAt(in23h, [encode('/cuemux/thump', [{ type: 's', value: `${k} ${filler}` }])]));
      }
      assert.equal((await p.request(port, '/cuemux/clock/fps', [{ type: 's', value: '25' }], 60_000)).status, 'ok');
      for (;;) {
        try {
          refused.push(await p.reply('/cuemux/reply/thump', 1));
        } catch {
          break;
        }
      }
      await sleep(60); // ~1,700 messages/s and ~700 KB/s: under the default per-sender budgets
    }
    const after = await rss(s.child.pid as number);
    const grownMb = (after - base) / 2 ** 20;
    process.stdout.write(`      server RSS ${(base / 2 ** 20).toFixed(1)} -> ${(after / 2 ** 20).toFixed(1)} MB after ${total} far-future bundles\n`);
    // The queue holds at most 1,024 messages and 4 MiB of datagrams; the rest is V8 heap slack from handling 10,000
    // datagrams and 8,976 replies (the young generation grows to tens of MB without --max-semi-space-size).
    assert.ok(grownMb < 64, `RSS grew by ${grownMb.toFixed(1)} MB`);
    assert.equal(refused.length, total - 1024, `${refused.length} of ${total} far-future bundles refused`);
    for (const r of refused) {
      assert.equal(r.code, 'RESOURCE_EXHAUSTED', JSON.stringify(r));
      assert.match(r.error ?? '', /would exceed the 1024 waiting for their time \(budget --osc-max-scheduled\)/);
    }
    const st = (await p.request(port, '/cuemux/status', [], 30_000)).data as OscStatus;
    assert.equal(st.osc?.scheduled, 1024);
    assert.equal(st.osc?.dropped.scheduleRefused, total - 1024);
    // Untimed control goes on.
    assert.equal((await p.request(port, '/cuemux/clock/play')).status, 'ok');
  });

  it('a bundle of 64 /cuemux/status gets at most 16 replies, the last saying so', async function () {
    const s = await serve([]);
    const port = s.oscPort as number;
    const p = await peer();
    await p.sendRaw(port, bundleAt(0n, Array.from({ length: 64 }, () => encode('/cuemux/status'))));
    // A later show command's reply comes after every reply to the bundle (the show answers in order). Not thump: the
    // OSC thread answers it at once, before the show has run the bundle.
    assert.equal((await p.request(port, '/cuemux/updates', [{ type: 'i', value: 0 }], 30_000)).status, 'ok');
    const got: Reply[] = [];
    for (;;) {
      try {
        got.push(await p.reply('/cuemux/reply/status', 1));
      } catch {
        break;
      }
    }
    assert.equal(got.length, 16, `${got.length} replies to a bundle of 64 status requests`);
    const last = got[15] as Reply & { repliesCapped?: string };
    assert.match(last.repliesCapped ?? '', /at most 16 replies per datagram: the other 48 messages of this one run unanswered/);
    const st = (await p.request(port, '/cuemux/status', [], 30_000)).data as OscStatus;
    assert.equal(st.osc?.repliesNotSent, 48);
  });

  it('a sender outside the allow-list (another network namespace) is ignored; an allowed one is served', async function () {
    const ns = `cmx${process.pid}`;
    const net = 10 + (process.pid % 200);
    const hostIf = `cmx${process.pid}a`.slice(0, 15);
    const nsIf = `cmx${process.pid}b`.slice(0, 15);
    const hostAddr = `10.211.${net}.1`;
    const nsAddr = `10.211.${net}.2`;
    const ip = (...args: string[]): Promise<unknown> => run('ip', args);
    await ip('netns', 'add', ns);
    try {
      await ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
      await ip('link', 'set', nsIf, 'netns', ns);
      await ip('addr', 'add', `${hostAddr}/30`, 'dev', hostIf);
      await ip('link', 'set', hostIf, 'up');
      await ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${nsAddr}/30`, 'dev', nsIf);
      await ip('netns', 'exec', ns, 'ip', 'link', 'set', nsIf, 'up');
      await ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');

      /** A sender in the namespace: sends /cuemux/thump, reports each reply, and how many it got when stdin closes. */
      const remote = (port: number): { child: ChildProcess; lines: string[] } => {
        const script = `
          const dgram = require('node:dgram');
          const s = dgram.createSocket('udp4');
          let n = 0;
          s.on('message', () => { n++; console.log('reply'); });
          s.bind(0, '${nsAddr}', () => {
            const m = Buffer.from('/cuemux/thump\\0\\0\\0,\\0\\0\\0', 'latin1');
            s.send(m, ${port}, '${hostAddr}', () => console.log('sent'));
          });
          process.stdin.resume();
          process.stdin.on('end', () => { console.log('replies ' + n); process.exit(0); });`;
        const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
        children.push(child);
        const lines: string[] = [];
        child.stdout?.setEncoding('utf8').on('data', (d: string) => lines.push(...d.split('\n').filter(Boolean)));
        return { child, lines };
      };
      const finish = async (r: { child: ChildProcess; lines: string[] }): Promise<number> => {
        r.child.stdin?.end();
        await once(r.child, 'exit');
        const line = r.lines.find((l) => l.startsWith('replies '));
        return Number(line?.slice('replies '.length));
      };

      // 1. Bound to every address, default allow-list: a clear warning at start; the namespace's sender is dropped.
      const open = await serve(['--osc-host', '0.0.0.0']);
      const local = await peer();
      const outside = remote(open.oscPort as number);
      await until('the namespace sender has sent', () => (outside.lines.includes('sent') ? true : undefined), 30_000);
      const st = await until('the server counted the datagram from outside the allow-list (or replied to it)', async () => {
        const r = (await local.request(open.oscPort as number, '/cuemux/status', [], 5000)).data as OscStatus;
        return (r.osc?.dropped.notAllowed ?? 0) >= 1 || outside.lines.includes('reply') ? r : undefined;
      });
      // Any reply to it would have left before the status reply we just got.
      assert.equal(await finish(outside), 0, 'no reply to a sender outside the allow-list');
      assert.equal(st.osc?.dropped.notAllowed, 1);
      assert.match(open.stderr(), /OSC listens on 0\.0\.0\.0:\d+ but only this machine may send .*--osc-allow/);
      assert.match(open.stderr(), new RegExp(`OSC datagram from ${nsAddr.replace(/\./g, '\\.')}:\\d+ dropped: the sender is not in the OSC allow-list`));
      assert.equal((await local.request(open.oscPort as number, '/cuemux/thump')).status, 'ok', 'loopback is served');

      // 2. --osc-allow NS/32: that sender is served, and loopback (not in the list) is now dropped.
      const lan = await serve(['--osc-host', '0.0.0.0', '--osc-allow', `${nsAddr}/32`]);
      assert.doesNotMatch(lan.stderr(), /only this machine may send/);
      const allowed = remote(lan.oscPort as number);
      await until('the allowed namespace sender got its reply', () => (allowed.lines.includes('reply') ? true : undefined), 30_000);
      assert.equal(await finish(allowed), 1);
      await local.send(lan.oscPort as number, '/cuemux/thump');
      await until('the loopback datagram is logged as not allowed', () => (/OSC datagram from 127\.0\.0\.1:\d+ dropped/.test(lan.stderr()) ? true : undefined), 30_000);
    } finally {
      await ip('netns', 'del', ns).catch(() => undefined);
      await ip('link', 'del', hostIf).catch(() => undefined);
    }
  });

  it('a sender over its message budget is dropped and counted; another sender is served meanwhile', async function () {
    const s = await serve(['--osc-rate-messages', '50']);
    const port = s.oscPort as number;
    const p = await peer();
    // A second sender on another loopback address (127.0.0.0/8 is allowed by default): its own budget.
    const other = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => other.bind(0, '127.0.0.2', resolve));
    const otherReplies: Buffer[] = [];
    other.on('message', (m) => otherReplies.push(m));
    try {
      const total = 500;
      // In small groups, so the kernel's receive buffer never overflows (its drops would be counted nowhere).
      for (let k = 0; k < total; k++) {
        await p.send(port, '/cuemux/thump');
        if (k % 20 === 19) await sleep(10);
      }
      const status = async (): Promise<OscStatus> => {
        const before = otherReplies.length;
        other.send(encode('/cuemux/status'), port, '127.0.0.1');
        await until('a status reply on 127.0.0.2', () => (otherReplies.length > before ? true : undefined), 30_000);
        const m = otherReplies[otherReplies.length - 1].toString('latin1');
        return (JSON.parse(m.slice(m.indexOf('{'), m.lastIndexOf('}') + 1)) as Reply).data as OscStatus;
      };
      let answered = 0;
      const st = await until('every thump answered or counted as over budget', async () => {
        for (;;) {
          try {
            await p.reply('/cuemux/reply/thump', 1);
            answered++;
          } catch {
            break;
          }
        }
        const r = await status();
        return answered + (r.osc?.dropped.overBudgetMessages ?? 0) === total ? r : undefined;
      });
      assert.ok(answered >= 50, `the burst (one second's budget) is served: ${answered}`);
      assert.ok((st.osc?.dropped.overBudget ?? 0) > 0, 'some were over budget');
      assert.equal(st.osc?.dropped.overBudget, total - answered);
      assert.match(s.stderr(), /OSC datagram from 127\.0\.0\.1:\d+ dropped: over the sender's messages per second \(--osc-rate-messages\) budget/);
      // One warning per sender per 10 s, not one per datagram.
      assert.ok((s.stderr().match(/over the sender's messages per second/g) ?? []).length <= 2);
    } finally {
      other.close();
    }
  });

  it('beyond --max-prefetch-bytes a cue loads without a prefetch (a warning says so) and its GO still plays', async function () {
    // One second of the 1080p clip is ~1.8 MB: the first cue's prefetch fits 3 MB, the second's does not.
    const s = await serve(['--max-prefetch-bytes', String(3 << 20)]);
    const port = s.oscPort as number;
    const p = await peer();
    const status = async (): Promise<{ budgets: { prefetch: { bytes: number; max: number } } }> =>
      (await p.request(port, '/cuemux/status', [], 30_000)).data as { budgets: { prefetch: { bytes: number; max: number } } };
    assert.equal((await p.request(port, '/cuemux/cue/load', [{ type: 's', value: 'A' }, { type: 's', value: 'big.mp4' }], 60_000)).status, 'ok');
    const one = (await status()).budgets.prefetch;
    assert.ok(one.bytes > 0 && one.bytes <= 3 << 20, JSON.stringify(one));
    assert.equal((await p.request(port, '/cuemux/cue/load', [{ type: 's', value: 'B' }, { type: 's', value: 'big.mp4' }], 60_000)).status, 'ok');
    assert.equal((await status()).budgets.prefetch.bytes, one.bytes, 'B holds no prefetch');
    assert.match(s.stderr(), /cue \\?"B\\?" loaded without a prefetch: its \d+ bytes would take the prefetched packets of all cues beyond the budget \(--max-prefetch-bytes 3145728/);
    const go = await p.request(port, '/cuemux/cue/go', [{ type: 's', value: 'B' }], 60_000);
    assert.equal(go.status, 'ok', JSON.stringify(go));
    // Unloading A gives its bytes back.
    assert.equal((await p.request(port, '/cuemux/cue/unload', [{ type: 's', value: 'A' }], 60_000)).status, 'ok');
    assert.equal((await status()).budgets.prefetch.bytes, 0);
  });

  it('/cuemux/status with 300 loaded cues is paged: every reply fits one datagram under 8,000 bytes', async function () {
    const media = 'act-1-scene-3-storm-sequence-with-lightning-background-loop-v2.mp4';
    const listFile = path.join(await scratchDir('osc-limits-list'), 'act1.json');
    const cues = Array.from({ length: 300 }, (_, k) => ({
      id: `cue-${k}`, name: `Cue ${k}: house to half, storm builds behind the gauze, lightning on the cyc, thunder`, media, in: k % 50,
    }));
    await fsp.writeFile(listFile, JSON.stringify({ version: 1, cues }));
    const s = await serve(['--cue-list', listFile]);
    const port = s.oscPort as number;
    const p = await peer();
    for (let i = 0; i < cues.length; i += 25) {
      for (let k = i; k < i + 25; k++) await p.send(port, '/cuemux/cue/load', [{ type: 's', value: `cue-${k}` }]);
      for (let k = i; k < i + 25; k++) assert.equal((await p.reply('/cuemux/reply/cue/load', 60_000)).status, 'ok');
    }
    // Raw datagram sizes: the peer's socket sees each reply whole.
    const sizes: number[] = [];
    const raw = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => raw.bind(0, '127.0.0.1', resolve));
    const inbox: Buffer[] = [];
    raw.on('message', (m) => {
      sizes.push(m.length);
      inbox.push(m);
    });
    try {
      const seen: string[] = [];
      let page: number | null = 0;
      let pages = 0;
      while (page !== null) {
        const before = inbox.length;
        raw.send(encode('/cuemux/status', page === 0 ? [] : [{ type: 'i', value: page }]), port, '127.0.0.1');
        await until('a status reply', () => (inbox.length > before ? true : undefined), 30_000);
        const m = inbox[inbox.length - 1].toString('utf8');
        const reply = JSON.parse(m.slice(m.indexOf('{'), m.lastIndexOf('}') + 1)) as Reply;
        assert.equal(reply.status, 'ok', JSON.stringify(reply).slice(0, 400));
        const st = reply.data as OscStatus;
        assert.equal(st.cueCount, 300);
        assert.ok(st.cues.length > 0);
        seen.push(...st.cues.map((c) => c.id));
        page = st.next ?? null;
        pages++;
        assert.ok(pages < 100, 'paging ends');
      }
      assert.deepEqual([...seen].sort(), cues.map((c) => c.id).sort(), 'every loaded cue appears once across the pages');
      assert.ok(pages > 1);
      for (const n of sizes) assert.ok(n <= 8000, `a status reply of ${n} bytes`);
    } finally {
      raw.close();
    }
  });
});
