/**
 * Several servers for one show (a main and its backup): which one to talk to. A master answers Follow and WatchShow;
 * a backup refuses them (FAILED_PRECONDITION, cuemux error code WRONG_STATE, naming its master) until it takes over.
 * A client given several servers asks each its role (GetRole, all at once) and goes to the master with the highest
 * term: after a takeover the old main, if it is still up (a partition), has a lower one and is about to stand down.
 */
import * as grpc from '@grpc/grpc-js';
import type { ServerRole } from '../generated/cuemux/v1/media_server';
import { MediaClientError, type MediaClient } from './media-client';

/** How long one GetRole may take when looking for the master, in ms (a LAN answers in under 1 ms; a dead host never). */
export const ROLE_TIMEOUT_MS = 300;

/** True for a server's refusal because it is not the master (a backup): the client should go to the master. */
export function isNotMaster(e: unknown): boolean {
  return e instanceof MediaClientError && e.code === grpc.status.FAILED_PRECONDITION && e.errorCode === 'WRONG_STATE';
}

/**
 * The index in `clients` of the master with the highest term (ties: the first), or null when none answers as master
 * within `timeoutMs` (default {@link ROLE_TIMEOUT_MS}) — e.g. while a backup is taking over.
 */
export async function findMaster(clients: readonly MediaClient[], options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<number | null> {
  return (await surveyRoles(clients, options)).master;
}

/**
 * Every server's role (null where none came within `timeoutMs`, default {@link ROLE_TIMEOUT_MS}), and the index of the
 * master with the highest term as {@link findMaster} gives it.
 */
export async function surveyRoles(clients: readonly MediaClient[], options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<{ master: number | null; roles: Array<ServerRole | null> }> {
  const roles = await Promise.all(clients.map((c) => c.getRole({ timeout: options.timeoutMs ?? ROLE_TIMEOUT_MS, signal: options.signal })
    .catch((): ServerRole | null => null)));
  let best: number | null = null;
  roles.forEach((r, i) => {
    if (r?.role !== 'master') return;
    if (best === null || r.term > (roles[best] as ServerRole).term) best = i;
  });
  return { master: best, roles };
}

/**
 * The server to try next after `current` failed: the master when one answers, else the next in the list (a backup
 * about to take over refuses until it has; the list is tried round). With one server, always that one.
 */
export async function nextServer(clients: readonly MediaClient[], current: number, signal?: AbortSignal): Promise<number> {
  if (clients.length === 1) return 0;
  return (await findMaster(clients, { signal })) ?? (current + 1) % clients.length;
}
