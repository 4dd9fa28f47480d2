/**
 * The fault suite's table (see faults.ts): one row per attack, printed after `npm run test:faults` and by
 * `npm run soak`, and the steal time of a run. No mocha here: scripts/soak.ts imports it.
 */
import { promises as fsp } from 'node:fs';

/** One row of the fault table: what an attack tried and what it cost the server. */
export interface FaultRow {
  attack: string;
  /** Inputs tried (datagrams, files, client cycles, clients...). */
  inputs: number;
  /** Faults injected (mutated or hostile inputs, kills, refused fds, full disks). */
  faults: number;
  /** Requests the server answered meanwhile (replies, successful calls). */
  served: number;
  /** Server restarts (kills followed by a new server on the same socket). */
  restarts: number;
  /** Server fds after the attack minus before (with halves: what the second half added; null: not measured). */
  fdsLeaked: number | null;
  /**
   * Live memory leaked, MB: what the second of two equal halves of the attack added to the server's V8 heap and
   * external memory after a full GC (fault-measures.ts LeakProbe; null: not measured).
   */
  leakedMb: number | null;
  /** Packets lost / duplicated against FFmpeg's reference (null: not applicable). */
  lost: number | null;
  duplicated: number | null;
  /** A console's /cuemux/thump p99 round trip, ms, idle and during the attack (null: not measured). */
  thumpIdleP99Ms: number | null;
  thumpAttackP99Ms: number | null;
  /** Thumps sent during the attack that got no answer within 5 s (or an error reply: show control stalled). */
  thumpUnanswered: number;
  /**
   * The same console's /cuemux/status p99 round trip, ms, idle and during the attack: a show query, which runs on the
   * server's main thread as every show command does (thump is answered by the OSC thread). Null: not measured.
   */
  statusIdleP99Ms: number | null;
  statusAttackP99Ms: number | null;
  /** Status requests sent during the attack that got no answer within 5 s. */
  statusUnanswered: number;
  /** Anything else worth a line (e.g. the error clients saw). */
  note: string;
  /** How the measuring console, the server's threads and the attack were scheduled (from /proc). */
  scheduling?: string;
}

const num = (v: number | null, digits = 0): string => (v === null || Number.isNaN(v) ? '-' : v.toFixed(digits));
const ratioOf = (idle: number | null, attack: number | null): number | null => (idle !== null && attack !== null && idle > 0 ? attack / idle : null);

/** The table, one line per attack, in Markdown. */
export function faultTable(list: readonly FaultRow[]): string {
  const head = ['attack', 'inputs tried', 'faults injected', 'requests served', 'server restarts', 'fds leaked', 'memory leaked (MB, 2nd half, after GC)',
    'packets lost', 'packets duplicated', 'thump p99 idle / attack (ms)', 'ratio (target ≤ 2)', 'status p99 idle / attack (ms)', 'status ratio'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of [...list].sort((a, b) => a.attack.localeCompare(b.attack, 'en', { numeric: true }))) {
    const ratio = ratioOf(r.thumpIdleP99Ms, r.thumpAttackP99Ms);
    const statusRatio = ratioOf(r.statusIdleP99Ms, r.statusAttackP99Ms);
    const unanswered = r.thumpUnanswered > 0 ? ` (${r.thumpUnanswered} unanswered)` : '';
    const statusUnanswered = r.statusUnanswered > 0 ? ` (${r.statusUnanswered} unanswered)` : '';
    lines.push(`| ${[r.attack, String(r.inputs), String(r.faults), String(r.served), String(r.restarts), num(r.fdsLeaked), num(r.leakedMb, 2),
      num(r.lost), num(r.duplicated), `${num(r.thumpIdleP99Ms, 2)} / ${num(r.thumpAttackP99Ms, 2)}${unanswered}`,
      ratio === null ? '-' : `${ratio.toFixed(2)}×`, `${num(r.statusIdleP99Ms, 2)} / ${num(r.statusAttackP99Ms, 2)}${statusUnanswered}`,
      statusRatio === null ? '-' : `${statusRatio.toFixed(2)}×`].join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Share of CPU time stolen by the hypervisor since the call, in % (from /proc/stat), read by the returned function. */
export function stealMeter(): () => Promise<number> {
  const read = async (): Promise<{ steal: number; total: number }> => {
    const line = (await fsp.readFile('/proc/stat', 'utf8')).split('\n')[0];
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
    return { steal: f[7] ?? 0, total: f.reduce((a, b) => a + b, 0) };
  };
  const start = read();
  return async () => {
    const [a, b] = [await start, await read()];
    return b.total === a.total ? 0 : (100 * (b.steal - a.steal)) / (b.total - a.total);
  };
}

