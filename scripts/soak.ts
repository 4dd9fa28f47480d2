/**
 * `npm run soak`: the fault suite (test/faults) at full size — 100,000 OSC datagrams, 1,000 client kill cycles, five
 * server kills, hundreds of hostile files and media — then its table: per attack, inputs tried, faults injected,
 * requests served, server restarts, fds and RSS leaked, packets lost and duplicated, a console's OSC thump p99 during
 * the attack against idle (answered by the server's OSC thread while its main thread runs), the same console's
 * `/cuemux/status` p99 against idle (a show query, run on the main thread like every show command: both figures side
 * by side), and the share of CPU time the hypervisor stole during the run (/proc/stat).
 * The tests are the ones `npm test` runs (CUEMUX_SOAK=1 makes them bigger); a failed check fails the soak.
 *
 * The measuring console runs at SCHED_FIFO 5 (test/support/faults.ts CONSOLE_PRIORITY), as the server's OSC thread
 * does by default: a real console is another machine, and on a 2-vCPU VM a console at normal priority waits behind
 * the attack's processes. The attack itself is unchanged. The table's notes say how each party was scheduled.
 *
 * Options: `--attacks a,b` runs only the attacks whose test file name contains one of the words (e.g.
 * `--attacks osc,kill`); `--quick` runs them at `npm test` size (seconds each) instead of the soak's.
 */
import { spawn } from 'node:child_process';
import { promises as fsp, readdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { faultTable, stealMeter, type FaultRow } from '../test/support/fault-table';
import { errorStack } from '../src/common/errors';

async function main(): Promise<number> {
  const repo = path.resolve(__dirname, '..', '..');
  const dir = path.join(repo, 'dist', 'test', 'faults');
  const args = process.argv.slice(2);
  const at = args.indexOf('--attacks');
  const words = at >= 0 ? (args[at + 1] ?? '').split(',').filter((w) => w !== '') : [];
  const quick = args.includes('--quick');
  const unknown = args.filter((a, i) => a !== '--quick' && a !== '--attacks' && !(at >= 0 && i === at + 1));
  if (unknown.length > 0 || (at >= 0 && words.length === 0)) {
    process.stderr.write(`soak: usage: soak.js [--quick] [--attacks WORD[,WORD...]] (unknown: ${unknown.join(' ') || '--attacks without words'})\n`);
    return 2;
  }
  const files = readdirSync(dir).filter((f) => f.endsWith('.test.js') && (words.length === 0 || words.some((w) => f.includes(w)))).sort().map((f) => path.join(dir, f));
  if (files.length === 0) {
    process.stderr.write(`soak: no attack matches ${words.join(',')} (files: ${readdirSync(dir).filter((f) => f.endsWith('.test.js')).join(' ')})\n`);
    return 2;
  }
  const report = path.join(os.tmpdir(), `cuemux-soak-${process.pid}.json`);
  const steal = stealMeter();
  const load0 = os.loadavg()[0];
  const started = Date.now();
  const code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, [path.join(repo, 'node_modules', 'mocha', 'bin', 'mocha.js'), '--no-config', '--timeout', '3600000', '--exit', ...files], {
      cwd: repo, stdio: 'inherit', env: { ...process.env, CUEMUX_SOAK: quick ? '0' : '1', CUEMUX_FAULT_REPORT: report },
    });
    child.on('exit', (c) => resolve(c ?? 1));
  });
  const stolen = await steal();
  const rows = JSON.parse(await fsp.readFile(report, 'utf8').catch(() => '[]')) as FaultRow[];
  await fsp.rm(report, { force: true });
  process.stdout.write(`\ncuemux soak${quick ? ' --quick' : ''}${words.length > 0 ? ` --attacks ${words.join(',')}` : ''} (${new Date().toISOString()}, ${((Date.now() - started) / 60_000).toFixed(1)} min, ${os.cpus().length} CPUs, `
    + `load average ${load0.toFixed(2)} at the start, ${os.loadavg()[0].toFixed(2)} at the end; steal time ${stolen.toFixed(1)} % of the CPU time)\n\n`);
  process.stdout.write(`${faultTable(rows)}\n\n`);
  const ordered = [...rows].sort((a, b) => a.attack.localeCompare(b.attack, 'en', { numeric: true }));
  for (const r of ordered) if (r.note) process.stdout.write(`- ${r.attack}: ${r.note}\n`);
  const scheduling = new Set(ordered.map((r) => r.scheduling ?? 'not recorded'));
  process.stdout.write(`\nScheduling (from /proc, when each console opened)${scheduling.size === 1 ? `: ${[...scheduling][0]}\n` : ':\n'}`);
  if (scheduling.size > 1) for (const r of ordered) process.stdout.write(`- ${r.attack}: ${r.scheduling ?? 'not recorded'}\n`);
  process.stdout.write(code === 0 ? '\nsoak: every check passed\n' : `\nsoak: FAILED (mocha exit ${code}): see the failures above\n`);
  return code;
}

main().then((code) => process.exit(code), (e: unknown) => {
  process.stderr.write(`soak failed: ${errorStack(e)}\n`);
  process.exit(1);
});
