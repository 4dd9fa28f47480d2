/**
 * The order in which a Follow call that opens sends the prerolls of the cues already armed: the likely next GO first.
 */
import type { LoadedCue } from '../show/loaded-cue';
import { RECENT_STARTS } from '../show/arming-record';
import type { Show } from '../show/show';

/**
 * `cues` (the loaded cues of a Follow call's output) in the order a player that has just connected prepares them (one
 * at a time per lane, about 0.4 s each for the bench:go H.264 cues while another cue plays):
 * 1. the standby cue, when it was chosen at or after the last GO (a GO without a cue id moved the playhead there, an
 *    operator stood it by, a cue list came: ArmingRecord.loadsAtStandby);
 * 2. the cues loaded since the third last GO and not started since, in load order: a console's GOs to come, loaded
 *    ahead in the order it will GO them, and an operator's cue loaded to GO it (bench:go saw fresh players' GOs of
 *    such a cue 3-9 ticks late, its preroll queued behind a dozen others). Since the last GO only, a cue loaded two
 *    GOs ahead came after the one loaded for the GO after it; the latest first, a console's next-but-one came first
 *    (bench:go on 1ea8929: its next GO not prepared, 16 ticks late). Not the show's own pre-arm of the list's next
 *    cue after a GO (LoadedCue.preArmed): after a GO by id, a guess at the next GO that no command made (bench:go on
 *    b1389f2: the list's next cue, pre-armed 75 ms after a GO, went before the cue a console loaded 185 ms later for
 *    a fresh player's next GO, which was not prepared at its GO, 18 ticks late);
 * 3. the cues loaded before that and not started since, and a standby cue left from before the last GO, the latest
 *    armed first (armed for GOs still to come; a standby cue counts as armed when it was last chosen or loaded, the
 *    later): a console GOing cues by id moves the playhead only as a side effect (bench:go on 2eeeb64, 082673a and
 *    48e931f, where it still went first: a cue list's 40-picture LOOP, the list's next after the cue GOne by id, went
 *    before the cue loaded for a fresh player's next GO in its long lane, not prepared at its GO, 13-20 ticks late);
 * 4. then those after the standby cue in the cue list (wrapping), then the others.
 */
export function prerollOrder(show: Pick<Show, 'cueList' | 'playhead' | 'arming'>, cues: readonly LoadedCue[]): LoadedCue[] {
  const list = show.cueList.cues;
  const at = Math.max(0, list.findIndex((c) => c.id === show.playhead));
  const { arming } = show;
  const recent = arming.loadsAtStartAgo(RECENT_STARTS - 1);
  const standbyChosen = arming.loadsAtStandby >= arming.loadsAtLastGo;
  const rank = (cue: LoadedCue): number => {
    const i = list.findIndex((c) => c.id === cue.id);
    const near = i < 0 ? list.length : (i - at + list.length) % list.length;
    const standby = i >= 0 && near === 0;
    if (standby && standbyChosen) return -4e15;
    // Among the cues not started since their last load: a cue loaded by its own (unarmed) GO is not the one an
    // operator loaded to GO next (bench:go on 0eba91a: a fresh player prepared such a cue, still playing, before the
    // cue armed for the next GO, which was then not prepared at its GO, 20 ticks late).
    const armed = cue.lastLoad > cue.lastStartLoads;
    // Loads count up from 1, so these rank in load order before every rank below.
    if (armed && !cue.preArmed && cue.lastLoad > recent) return -3e15 + cue.lastLoad;
    // Half a load later than the load counted when it became the standby: before a cue loaded just before that.
    if (standby) return -1e15 - Math.max(arming.loadsAtStandby + 0.5, armed ? cue.lastLoad : 0);
    // A cue armed long ago and never GOne is the least likely of these (bench:go on b089998, in load order: a fresh
    // player prepared a cue armed 6 s before it connected after two armed at the start of the run, and its GO 2.1 s
    // after the connect found it not prepared, 13-17 ticks late in two runs).
    return armed ? -1e15 - cue.lastLoad : near;
  };
  return [...cues].sort((a, b) => rank(a) - rank(b));
}
