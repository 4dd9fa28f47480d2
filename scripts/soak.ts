/**
 * `npm run soak`: the fault suite (test/faults) at full size — 100,000 OSC datagrams, 1,000 client kill cycles, five
 * server kills, hundreds of hostile files and media — then its table: per attack, inputs tried, faults injected,
 * requests served, server restarts, fds and RSS leaked, packets lost and duplicated, a console's OSC thump p99 during
 * the attack against idle (answered by the server's OSC thread while its main thread runs), the same console's
 * `/cuemux/status` p99 against idle (a show query, run on the main thread like every show command: both figures side
 * by side), and the share of CPU time the hypervisor stole during the run (/proc/stat).
 * The tests are the ones `npm test` runs (CUEMUX_SOAK=1 makes them bigger); a failed check fails the soak.
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
  const files = readdirSync(dir).filter((f) => f.endsWith('.test.js')).sort().map((f) => path.join(dir, f));
  const report = path.join(os.tmpdir(), `cuemux-soak-${process.pid}.json`);
  const steal = stealMeter();
  const load0 = os.loadavg()[0];
  const started = Date.now();
  const code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, [path.join(repo, 'node_modules', 'mocha', 'bin', 'mocha.js'), '--no-config', '--timeout', '3600000', '--exit', ...files], {
      cwd: repo, stdio: 'inherit', env: { ...process.env, CUEMUX_SOAK: '1', CUEMUX_FAULT_REPORT: report },
    });
    child.on('exit', (c) => resolve(c ?? 1));
  });
  const stolen = await steal();
  const rows = JSON.parse(await fsp.readFile(report, 'utf8').catch(() => '[]')) as FaultRow[];
  await fsp.rm(report, { force: true });
  process.stdout.write(`\ncuemux soak (${new Date().toISOString()}, ${((Date.now() - started) / 60_000).toFixed(1)} min, ${os.cpus().length} CPUs, `
    + `load average ${load0.toFixed(2)} at the start, ${os.loadavg()[0].toFixed(2)} at the end; steal time ${stolen.toFixed(1)} % of the CPU time)\n\n`);
  process.stdout.write(`${faultTable(rows)}\n\n`);
  const ordered = [...rows].sort((a, b) => a.attack.localeCompare(b.attack, 'en', { numeric: true }));
  for (const r of ordered) if (r.note) process.stdout.write(`- ${r.attack}: ${r.note}\n`);
  process.stdout.write(code === 0 ? '\nsoak: every check passed\n' : `\nsoak: FAILED (mocha exit ${code}): see the failures above\n`);
  return code;
}

main().then((code) => process.exit(code), (e: unknown) => {
  process.stderr.write(`soak failed: ${errorStack(e)}\n`);
  process.exit(1);
});
