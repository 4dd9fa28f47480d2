/**
 * Run the real `cuemux` CLI (bin/cuemux.js → dist) as a child process, as a technician would.
 */
import { spawn, type SpawnOptions } from 'node:child_process';
import * as path from 'node:path';

/** The repository root (dist/test/support → three levels up). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
/** The CLI launcher. */
export const CUEMUX_BIN = path.join(REPO_ROOT, 'bin', 'cuemux.js');

/** What a CLI run produced. */
export interface CliResult {
  /** Exit code (null when killed by a signal). */
  code: number | null;
  /** Signal that ended it, if any. */
  signal: NodeJS.Signals | null;
  /** Everything written to stdout. */
  stdout: string;
  /** Everything written to stderr. */
  stderr: string;
}

/** Options for {@link runCli}. */
export interface RunCliOptions {
  /** Extra environment (merged over process.env). */
  env?: Record<string, string>;
  /** Run as this uid/gid (tests of permission handling when running as root). */
  uid?: number;
  /** Group id to run as. */
  gid?: number;
  /** Working directory. */
  cwd?: string;
}

/** Run `cuemux ...args` to completion. */
export function runCli(args: string[], options: RunCliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const spawnOptions: SpawnOptions = {
      env: { ...process.env, CUEMUX_LOG_LEVEL: 'warn', ...options.env },
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      uid: options.uid,
      gid: options.gid,
    };
    const child = spawn(process.execPath, [CUEMUX_BIN, ...args], spawnOptions);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Start `cuemux ...args` and return the child (for kill tests). */
export function startCli(args: string[], options: RunCliOptions = {}): ReturnType<typeof spawn> {
  return spawn(process.execPath, [CUEMUX_BIN, ...args], {
    env: { ...process.env, CUEMUX_LOG_LEVEL: 'warn', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}
