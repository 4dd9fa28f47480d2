/**
 * The sorted tables of a growing index (each stream's keyframes and presentation-order frames), kept append-only so
 * that every published view of them (a subarray) stays valid and unchanged while the tables grow: publishing a
 * growing index then costs O(streams), not a re-encode and re-parse of the whole index (which cost 11 ms per
 * snapshot on a 129k-packet file and, snapshot after snapshot, grew the server's RSS as the file grew).
 *
 * A value can arrive out of order (a B-frame's pts is below its reference frames'), so the table is sorted by
 * insertion from its end, and only its settled prefix is published: the values no later packet can precede. Every
 * later packet of a stream has dts >= the latest dts seen and pts >= its dts, so a value <= that latest dts is settled.
 */
import { i64At } from './byte-io';

const TWO32 = 4294967296;

/** One growing sorted table of int64 values (int32 pairs, as the index's tables) with a uint32 payload per row. */
export class SortedTable {
  #words = new Int32Array(64);
  #payload = new Uint32Array(32);
  #count = 0;
  /** Rows already published: a value inserted below them copies the table first (old views keep the old one). */
  #published = 0;

  /** Rows in the table. */
  get count(): number {
    return this.#count;
  }

  #set(at: number, v: number, payload: number): void {
    const hi = Math.floor(v / TWO32);
    this.#words[2 * at] = v - hi * TWO32;
    this.#words[2 * at + 1] = hi;
    this.#payload[at] = payload;
  }

  /** Insert `v` (an integer, |v| < 2^52) with `payload`, keeping the table ascending (stable: after equal values). */
  insert(v: number, payload = 0): void {
    if (this.#count === this.#payload.length) this.#grow(this.#payload.length * 2);
    let at = this.#count;
    while (at > 0 && i64At(this.#words, at - 1) > v) at--;
    // A malformed stream (pts below an earlier dts) would move a published row: copy the table first.
    if (at < this.#published) this.#grow(this.#payload.length);
    this.#words.copyWithin(2 * at + 2, 2 * at, 2 * this.#count);
    this.#payload.copyWithin(at + 1, at, this.#count);
    this.#set(at, v, payload);
    this.#count++;
  }

  #grow(rows: number): void {
    const words = new Int32Array(rows * 2);
    words.set(this.#words.subarray(0, 2 * this.#count));
    const payload = new Uint32Array(rows);
    payload.set(this.#payload.subarray(0, this.#count));
    this.#words = words;
    this.#payload = payload;
    this.#published = 0;
  }

  /**
   * The rows whose value is <= `settled` (all when `settled` is Infinity), as views: valid and unchanged for as
   * long as they are held, whatever is inserted later.
   */
  publish(settled: number): { count: number; values: Int32Array; payload: Uint32Array } {
    let n = this.#count;
    while (n > 0 && i64At(this.#words, n - 1) > settled) n--;
    this.#published = Math.max(this.#published, n);
    return { count: n, values: this.#words.subarray(0, 2 * n), payload: this.#payload.subarray(0, n) };
  }
}
