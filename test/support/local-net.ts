/**
 * A non-loopback address on this machine for tests of what is refused or allowed "from the network": a veth pair in
 * the test's own network namespace, the address (10.231.X.Y/30) on one end. Traffic between local addresses stays on
 * this machine, but a socket bound to it sends from a non-loopback address, and a server bound to it listens on one.
 * Needs root (`ip link add`); tests skip without it. Only addresses made here are ever used.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
let made = 0;

/** A non-loopback address made for a test, and how to remove it. */
export interface LocalAddress {
  /** The IPv4 address, e.g. `10.231.17.1`. */
  address: string;
  /** Delete the veth pair (idempotent). */
  remove(): Promise<void>;
}

/**
 * Make a veth pair with a fresh 10.231.X.Y/30 address on one end (X from the pid, Y from a counter, so test files
 * and concurrent runs do not share one). Rejects with the reason when `ip` cannot (not root, no veth support).
 */
export async function makeLocalAddress(): Promise<LocalAddress> {
  const n = made++;
  const name = `cmx${process.pid % 100000}s${n}`.slice(0, 13);
  const address = `10.231.${process.pid % 250}.${(4 * n + 1) % 252}`;
  const ip = (...args: string[]): Promise<unknown> => run('ip', args);
  await ip('link', 'add', `${name}a`, 'type', 'veth', 'peer', 'name', `${name}b`);
  let removed = false;
  const remove = async (): Promise<void> => {
    if (removed) return;
    removed = true;
    await ip('link', 'del', `${name}a`).catch(() => undefined); // deleting one end deletes the pair
  };
  try {
    await ip('addr', 'add', `${address}/30`, 'dev', `${name}a`);
    await ip('link', 'set', `${name}a`, 'up');
    await ip('link', 'set', `${name}b`, 'up');
  } catch (e) {
    await remove();
    throw e;
  }
  return { address, remove };
}
