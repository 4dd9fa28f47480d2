/**
 * What the show could not do with a cue on its own, where no console was there to get an error reply (arming the
 * next cues after a GO, an auto-follow, a cue's end, a follower's media): logged, and the last problem of each cue
 * kept for status until the cue loads or starts again.
 */
import { errorMessage, errorStack } from '../common/errors';
import { getLogger } from '../common/logger';
import { unixNs } from '../common/time-source';

const log = getLogger('show');

/** Problems kept for status (the oldest go first). */
const MAX_CUE_PROBLEMS = 64;

/** Why the show could not do something with a cue on its own. */
export interface CueProblem {
  /** The cue id. */
  cueId: string;
  /**
   * What the show was doing: "pre-arm" (arming the next cues after a GO), "re-arm" (after a cue list edit),
   * "auto-follow" (starting the next cue of a chain), "end" (ending a cue), "prefetch" (reading an in-point after an
   * unarmed GO), "mirror" (a follower's media that is not the master's).
   */
  during: 'pre-arm' | 're-arm' | 'auto-follow' | 'end' | 'prefetch' | 'mirror';
  /** The error message (names the file and what is wrong). */
  message: string;
  /** When it happened, in ns since the Unix epoch. */
  unixNs: bigint;
}

/** The last problem of each cue, in the order they happened; at most 64. */
export class CueProblems {
  readonly #byCue = new Map<string, CueProblem>();

  /** The problems, oldest first. */
  get list(): readonly CueProblem[] {
    return [...this.#byCue.values()];
  }

  /** Forget cue `id`'s problem (it loaded or started). */
  clear(id: string): void {
    this.#byCue.delete(id);
  }

  /** Log `e` (an error or a message) met with cue `id` while `during`, and keep it, replacing the cue's last one. */
  note(id: string, during: CueProblem['during'], e: unknown, level: 'warn' | 'error'): void {
    const message = errorMessage(e);
    log[level](`cue "${id.slice(0, 64)}": ${during} failed: ${message}`, { cue: id, during, error: level === 'error' ? errorStack(e) : message });
    this.#byCue.delete(id);
    this.#byCue.set(id, { cueId: id, during, message, unixNs: unixNs() });
    if (this.#byCue.size > MAX_CUE_PROBLEMS) this.#byCue.delete(this.#byCue.keys().next().value as string);
  }
}
