/**
 * The order in which a Follow call that opens sends the prerolls of the cues already armed: the likely next GO first.
 */
import type { LoadedCue } from '../show/loaded-cue';
import type { Show } from '../show/show';

/**
 * `cues` (the loaded cues of a Follow call's output) in the order a player that has just connected prepares them (one
 * at a time, about 0.4 s each for the bench:go H.264 cues while another cue plays): the standby cue; the cue loaded
 * last and not started since (an operator loads a cue to GO it: bench:go saw fresh players' GOs of such a cue 3-9
 * ticks late, its preroll queued behind a dozen others); the other cues loaded since the last GO, in load order (a
 * console's queue of GOs to come: on 2819d15 the second GO of a fresh player, of a cue loaded before the first GO's,
 * was not prepared and 6 ticks late); the cues loaded before the last GO and not started since, the latest armed first
 * (armed for GOs still to come); then those after the standby cue in the cue list (wrapping), then the others.
 */
export function prerollOrder(show: Pick<Show, 'cueList' | 'playhead' | 'loadsAtLastGo'>, cues: readonly LoadedCue[]): LoadedCue[] {
  const list = show.cueList.cues;
  const at = Math.max(0, list.findIndex((c) => c.id === show.playhead));
  // Among the cues not started since their last load: a cue loaded by its own (unarmed) GO is not the one an
  // operator loaded to GO next (bench:go on 0eba91a: a fresh player prepared such a cue, still playing, before the
  // cue armed for the next GO, which was then not prepared at its GO, 20 ticks late).
  const last = cues.reduce<LoadedCue | null>((a, c) => (c.lastLoad > c.lastStartLoads && (a === null || c.lastLoad > a.lastLoad) ? c : a), null);
  const sinceGo = show.loadsAtLastGo;
  const rank = (cue: LoadedCue): number => {
    const i = list.findIndex((c) => c.id === cue.id);
    const near = i < 0 ? list.length : (i - at + list.length) % list.length;
    if (i >= 0 && near === 0) return -3e15;
    if (cue === last) return -3e15 + 1;
    // Then the cues loaded since the last GO (a console's next GOs), in load order; then the others loaded (or
    // re-armed) and not started since, the latest armed first: armed for GOs still to come too (a console that
    // loads two GOs ahead loaded the next-but-one before the last GO: bench:go --quick, a fresh player prepared such
    // a cue 9th of 10, after its GO), and a cue armed long ago and never GOne is the least likely of them (bench:go
    // on b089998, in load order: a fresh player prepared a cue armed 6 s before it connected after two armed at the
    // start of the run, and its GO 2.1 s after the connect found it not prepared, 13-17 ticks late in two runs).
    // Loads count up from 1, so these rank after the two above and before every cue-list rank (≥ 0).
    if (cue.lastLoad > sinceGo) return -2e15 + cue.lastLoad;
    return cue.lastLoad > cue.lastStartLoads ? -1e15 - cue.lastLoad : near;
  };
  return [...cues].sort((a, b) => rank(a) - rank(b));
}
