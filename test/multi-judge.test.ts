/**
 * bench:multi's judge (scripts/bench/multi-judge): which show command a wrong tick or dry period is counted under,
 * and where the partition's and the failover's spans end. Pure functions of instants: no processes, milliseconds.
 *
 * Checked: a failover span that a later show command falls inside ends at that command (what follows a command is
 * that command's, counted with the rest of the run), and is left whole when no command falls inside; instants are
 * counted under the last command at or before them; the CPU timeline's mean is taken over the samples inside a span.
 */
import assert from 'node:assert/strict';
import { busyIn, countByCommand, endAtNextCommand, type Span } from '../scripts/bench/multi-judge';

const s = (x: number): bigint => BigInt(Math.round(x * 1e9));

describe('bench:multi judge: spans and commands', () => {
  it('ends the failover span at the show\'s next command after the takeover, and only then', () => {
    // The full run's case: SIGKILL at 0, takeover at 0.278 s, span to 5.278 s, a locate at 2.0 s.
    const failover: Span = { from: s(0), to: s(5.278) };
    const commands = [s(-4), s(-1), s(2), s(7)];
    assert.deepEqual(endAtNextCommand(failover, s(0.278), commands), { from: s(0), to: s(2) });
    // No command inside: the span as it was (a slow takeover whose span ends before the show's next command).
    assert.deepEqual(endAtNextCommand(failover, s(0.278), [s(-4), s(7)]), failover);
    // A command before the takeover (the partition: a cue stopped while the link was down) does not end it.
    assert.deepEqual(endAtNextCommand({ from: s(0), to: s(7) }, s(2), [s(1), s(4)]), { from: s(0), to: s(4) });
    assert.equal(endAtNextCommand(null, s(0), commands), null);
  });

  it('counts instants under the last command at or before them', () => {
    const commands = [s(10), s(0), s(5)];
    const names = ['clock/locate', 'cue/go', 'clock/play'];
    const counts = countByCommand([s(-1), s(0), s(4.9), s(5), s(12), s(13)], commands, names);
    assert.deepEqual([...counts].sort(), [['before the show', 1], ['clock/locate', 2], ['clock/play', 1], ['cue/go', 2]]);
  });

  it('takes the CPU timeline\'s mean over the samples inside a span', () => {
    const samples = [0.2, 0.4, 1, 0.8].map((busy, i) => ({ mono: s(0.1 * (i + 1)), busy }));
    assert.equal(busyIn(samples, s(0.2), s(0.4)), 0.9);
    assert.ok(Number.isNaN(busyIn(samples, s(1), s(2))));
  });
});
