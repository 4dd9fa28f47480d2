/**
 * The cue list in effect and its playhead (the cue a GO without an id starts), or, on a follower server, the
 * master's list as the master reports it (ids and standby cue only: definitions come with the loaded cues). The show
 * decides what to load and emits the changes; this keeps the list, finds cues in it and moves the playhead.
 */
import { CuemuxError } from '../common/errors';
import type { CueDefinition } from './cue-definition';

/** The cue list in effect. */
export interface CueList {
  /** The file it came from ("" for none). */
  readonly path: string;
  /** Cues in order. */
  readonly cues: readonly CueDefinition[];
}

/** The cue list, its playhead, and a follower's copy of the master's. */
export class CueListCursor {
  #list: CueList = { path: '', cues: [] };
  /** Index of the standby cue in the list (the list's length: none). */
  #playhead = 0;
  /** A follower's copy of the master's cue list (ids only: its definitions come with the loaded cues). */
  #mirrored: { path: string; ids: string[]; playhead: string | null } | null = null;

  /** The cue list in effect (this server's own, also on a follower). */
  get list(): CueList {
    return this.#list;
  }

  /** The id of the cue a GO without an id starts (the master's on a follower), or null. */
  get playhead(): string | null {
    if (this.#mirrored !== null) return this.#mirrored.playhead;
    return this.#list.cues[this.#playhead]?.id ?? null;
  }

  /** Cue `id`'s definition in the list, or undefined. */
  listed(id: string): CueDefinition | undefined {
    return this.#list.cues.find((c) => c.id === id);
  }

  /** Cue `id`'s definition in the list. @throws CuemuxError NOT_FOUND naming the list and the cues it has. */
  definition(id: string): CueDefinition {
    const def = this.listed(id);
    if (def === undefined) {
      const known = this.#list.cues.map((c) => c.id).join(', ') || 'none';
      throw new CuemuxError('NOT_FOUND', `no cue "${id}" in the cue list${this.#list.path ? ` ${this.#list.path}` : ''} (cues: ${known}); load a cue list or give the media path`);
    }
    return def;
  }

  /** The cue after `id` in the list when it auto-follows. */
  autoFollower(id: string): CueDefinition | undefined {
    const i = this.#list.cues.findIndex((c) => c.id === id);
    const next = i >= 0 ? this.#list.cues[i + 1] : undefined;
    return next !== undefined && next.follow ? next : undefined;
  }

  /**
   * After GO on `id`: the playhead moves to the next cue that does not auto-follow. Returns the ids of the cues to arm
   * (the auto-follow chain after `id` and the new standby cue), or null when `id` is not in the list (nothing moves).
   */
  advancePast(id: string): string[] | null {
    const i = this.#list.cues.findIndex((c) => c.id === id);
    if (i < 0) return null;
    let next = i + 1;
    while (next < this.#list.cues.length && this.#list.cues[next].follow) next++;
    this.#playhead = next;
    return this.#list.cues.slice(i + 1, next + 1).map((d) => d.id);
  }

  /** Move the playhead to cue `id`. @throws CuemuxError NOT_FOUND when the list has no such cue. */
  standBy(id: string): void {
    const i = this.#list.cues.findIndex((c) => c.id === id);
    if (i < 0) this.definition(id);
    this.#playhead = i;
  }

  /**
   * Put `list` in effect; the playhead stays on the same cue id when the new list has it. Returns the list it
   * replaces. @throws CuemuxError INVALID_ARGUMENT when two cues share an id (nothing changes).
   */
  replace(list: CueList): CueList {
    const standby = this.playhead;
    const ids = new Set(list.cues.map((c) => c.id));
    if (ids.size !== list.cues.length) throw new CuemuxError('INVALID_ARGUMENT', `${list.path || 'cue list'}: cue ids must be unique`);
    const old = this.#list;
    this.#list = list;
    const keep = standby === null ? -1 : list.cues.findIndex((c) => c.id === standby);
    this.#playhead = keep >= 0 ? keep : Math.min(this.#playhead, list.cues.length);
    return old;
  }

  /** Follower servers: the master's cue list (file, cue ids, standby cue). Returns false when nothing changed. */
  mirror(path: string, ids: readonly string[], playhead: string | null): boolean {
    const m = this.#mirrored;
    if (m !== null && m.path === path && m.playhead === playhead && m.ids.length === ids.length && m.ids.every((id, i) => id === ids[i])) return false;
    this.#mirrored = { path, ids: [...ids], playhead };
    return true;
  }

  /** A follower that becomes master: its own list again, the playhead on `standby` when listed (else past the end). */
  stopMirroring(standby: string | null): void {
    this.#mirrored = null;
    const at = standby === null ? -1 : this.#list.cues.findIndex((c) => c.id === standby);
    this.#playhead = at >= 0 ? at : this.#list.cues.length;
  }

  /** For status: the list's file, its cue ids and the standby cue (the master's on a follower). */
  status(): { path: string; cues: string[]; playhead: string | null } {
    if (this.#mirrored !== null) return { path: this.#mirrored.path, cues: [...this.#mirrored.ids], playhead: this.#mirrored.playhead };
    return { path: this.#list.path, cues: this.#list.cues.map((c) => c.id), playhead: this.playhead };
  }
}
