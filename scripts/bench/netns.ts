/**
 * Several machines on one (issue 14), shared by the namespace tests (test/support/netns.ts re-exports it) and
 * bench:multi: network namespaces joined by veth pairs, with addresses only inside namespaces made here, removed
 * after. Every namespace shares CLOCK_MONOTONIC and CLOCK_REALTIME, so sync logs written in any of them compare
 * exactly. Needs root (`ip netns add`); callers skip or fail with ip's message where it is not permitted.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ip = (...args: string[]): Promise<unknown> => run('ip', args);

/** Delete namespace `ns` (and with it the veth ends inside it); never rejects. */
export async function removeNamespace(ns: string): Promise<void> {
  await run('ip', ['netns', 'del', ns]).catch(() => undefined);
}

/**
 * Delete every namespace whose name starts with `prefix` (a run that died before its cleanup leaves them); the
 * names removed.
 */
export async function removeStaleNamespaces(prefix: string): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list']).catch(() => ({ stdout: '' }));
  const stale = stdout.split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith(prefix));
  for (const ns of stale) await removeNamespace(ns);
  return stale;
}

/** One end of a veth pair: its namespace, interface and IPv4 address (/30). */
export interface VethEnd {
  ns: string;
  dev: string;
  address: string;
}

/**
 * A veth pair from namespace `a` (interface `devA`, address `net`.1/30) to namespace `b` (`devB`, `net`.2/30), both
 * up with their loopbacks; the namespaces must exist.
 */
export async function addVeth(a: string, devA: string, b: string, devB: string, net: string): Promise<[VethEnd, VethEnd]> {
  await ip('link', 'add', devA, 'type', 'veth', 'peer', 'name', devB);
  await ip('link', 'set', devA, 'netns', a);
  await ip('link', 'set', devB, 'netns', b);
  const ends: [VethEnd, VethEnd] = [{ ns: a, dev: devA, address: `${net}.1` }, { ns: b, dev: devB, address: `${net}.2` }];
  for (const e of ends) {
    await ip('-n', e.ns, 'addr', 'add', `${e.address}/30`, 'dev', e.dev);
    await ip('-n', e.ns, 'link', 'set', e.dev, 'up');
    await ip('-n', e.ns, 'link', 'set', 'lo', 'up');
  }
  return ends;
}

/** Set both ends of a veth pair down (a partition) or up (healed). */
export async function setVeth(ends: readonly VethEnd[], up: boolean): Promise<void> {
  for (const e of ends) await ip('-n', e.ns, 'link', 'set', e.dev, up ? 'up' : 'down');
}

/** Two namespaces `a` and `b`, their veth ends' addresses, and how to remove them. */
export interface NamespacePair {
  a: string;
  b: string;
  aIp: string;
  bIp: string;
  /** Set the link down (a partition: both ends) or up again (healed). */
  setLink: (up: boolean) => Promise<void>;
  /** Delete both namespaces (and so the pair); never rejects. */
  remove: () => Promise<void>;
}

/**
 * Make namespaces `${tag}${pid}m` and `…f` joined by a veth pair on 10.`second`.(pid % 250).0/30; rejects (with ip's
 * message) where that is not permitted, after removing what it made.
 */
export async function makeNamespacePair(tag: string, second: number): Promise<NamespacePair> {
  const t = `${tag}${process.pid % 100000}`;
  const net = `10.${second}.${process.pid % 250}`;
  let ends: VethEnd[] = [];
  const pair: NamespacePair = {
    a: `${t}m`, b: `${t}f`, aIp: `${net}.1`, bIp: `${net}.2`,
    setLink: (up) => setVeth(ends, up),
    remove: async () => {
      for (const ns of [pair.a, pair.b]) await removeNamespace(ns);
    },
  };
  try {
    await ip('netns', 'add', pair.a);
    await ip('netns', 'add', pair.b);
    ends = await addVeth(pair.a, `${t}a`, pair.b, `${t}b`, net);
  } catch (e) {
    await pair.remove();
    throw e;
  }
  return pair;
}

/**
 * Machines around a hub. Each machine's namespace has one link, to the hub, which routes between the links, and
 * every machine's **service address** (where its server listens, the same from every machine, as on a LAN) on the
 * loopback of every machine: a machine's own is its server's; another's is where a relay process in that machine
 * listens and forwards, across the links, to the other machine (see ./relay), so that traffic between servers and
 * players crosses a relay that delays and loses it.
 */
export interface Star {
  hub: string;
  /** Per machine name: its namespace, its link address (routed through the hub), its service address and its link. */
  machines: Map<string, { ns: string; ip: string; serviceIp: string; link: [VethEnd, VethEnd] }>;
  /** Set machine `name`'s link down (a partition of that machine) or up. */
  setLink(name: string, up: boolean): Promise<void>;
  /** Delete every namespace of the star; never rejects. */
  remove(): Promise<void>;
}

/**
 * Namespaces `${prefix}hub` and `${prefix}NAME` per machine name, machine i joined to the hub by a veth pair on
 * 10.`second`.i.0/30 (hub .1, machine .2; the hub forwards between them), service addresses 10.`second`.100.i (/32,
 * on every machine's loopback). Rejects with ip's message, after removing what it made.
 */
export async function makeStar(prefix: string, names: readonly string[], second: number): Promise<Star> {
  const hub = `${prefix}hub`;
  const star: Star = {
    hub, machines: new Map(),
    setLink: async (name, up) => {
      const m = star.machines.get(name);
      if (m === undefined) throw new Error(`no machine ${name} in the star`);
      await setVeth(m.link, up);
      // A link set up again has lost its routes.
      if (up) await ip('-n', m.ns, 'route', 'replace', `10.${second}.0.0/16`, 'via', m.link[0].address);
    },
    remove: async () => {
      for (const ns of [hub, ...names.map((n) => `${prefix}${n}`)]) await removeNamespace(ns);
    },
  };
  try {
    await ip('netns', 'add', hub);
    await run('ip', ['netns', 'exec', hub, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    for (const [i, name] of names.entries()) {
      const ns = `${prefix}${name}`;
      await ip('netns', 'add', ns);
      const link = await addVeth(hub, `${prefix}h${i}`, ns, `${prefix}m${i}`, `10.${second}.${i + 1}`);
      await ip('-n', ns, 'route', 'add', `10.${second}.0.0/16`, 'via', link[0].address);
      for (let j = 0; j < names.length; j++) await ip('-n', ns, 'addr', 'add', `10.${second}.100.${j + 1}/32`, 'dev', 'lo');
      star.machines.set(name, { ns, ip: link[1].address, serviceIp: `10.${second}.100.${i + 1}`, link });
    }
  } catch (e) {
    await star.remove();
    throw e;
  }
  return star;
}
