/**
 * HTTP byte ranges (RFC 9110 §14, formerly RFC 7233), with the unknown complete length of RFC 8673 for a file that
 * is still being written: parsing `Range`, judging `If-Range`, and the `Content-Range` values.
 */

/** One satisfiable range: first and last byte offsets, inclusive. */
export interface ByteRange {
  /** First byte. */
  start: number;
  /** Last byte (inclusive). */
  end: number;
}

/** What a `Range` header asks of a representation of `size` bytes. */
export type RangeRequest =
  /** No (usable) Range: the whole representation, 200. A syntactically invalid header is ignored (RFC 9110 §14.2). */
  | { kind: 'whole' }
  /** These ranges (in the order asked, at least one), 206. */
  | { kind: 'ranges'; ranges: ByteRange[] }
  /** No range overlaps the representation: 416. */
  | { kind: 'unsatisfiable' };

/**
 * Most ranges one request may ask for; beyond, the header is ignored and the whole file sent (RFC 9110 §14.2 lets a
 * server ignore a Range; many small ranges are a known amplification attack, e.g. CVE-2011-3192).
 */
export const MAX_RANGES = 32;

/**
 * Parse `header` against a representation of `size` bytes (bytes written so far for a growing file). Ranges are
 * clipped to `size`; a suffix range (`-N`) is the last N bytes of `size`. A range that starts at or after `size`
 * is dropped; when all are, the request is unsatisfiable (a growing file's caller waits for bytes first).
 */
export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: 'whole' };
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(header);
  if (m === null) return { kind: 'whole' };
  const specs = m[1].split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (specs.length === 0 || specs.length > MAX_RANGES) return { kind: 'whole' };
  const ranges: ByteRange[] = [];
  for (const spec of specs) {
    const r = /^(\d*)\s*-\s*(\d*)$/.exec(spec);
    if (r === null || (r[1] === '' && r[2] === '')) return { kind: 'whole' };
    if (r[1] === '') {
      const n = Number(r[2]);
      if (n === 0 || size === 0) continue;
      ranges.push({ start: Math.max(0, size - n), end: size - 1 });
      continue;
    }
    const start = Number(r[1]);
    const end = r[2] === '' ? Infinity : Number(r[2]);
    if (end < start) return { kind: 'whole' };
    if (start >= size) continue;
    ranges.push({ start, end: Math.min(end, size - 1) });
  }
  return ranges.length === 0 ? { kind: 'unsatisfiable' } : { kind: 'ranges', ranges };
}

/** The first byte a Range header asks for (for waiting on a growing file), or null when it asks none or only suffixes. */
export function firstAskedByte(header: string | undefined): number | null {
  if (header === undefined) return null;
  const m = /^\s*bytes\s*=\s*(\d+)\s*-/i.exec(header);
  return m === null ? null : Number(m[1]);
}

/** A representation's validators: a strong ETag (null while the file grows: its bytes are still changing) and its modification time. */
export interface Validators {
  /** Strong entity tag, quoted. */
  etag: string | null;
  /** Last modification, as an HTTP date. */
  lastModified: string;
}

/**
 * Whether `If-Range` lets the Range apply (RFC 9110 §13.1.5): an entity tag must match the strong ETag exactly
 * (a weak one never does); a date must equal Last-Modified exactly. Absent: true.
 */
export function ifRangeHolds(ifRange: string | undefined, v: Validators): boolean {
  if (ifRange === undefined) return true;
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith('W/')) return v.etag !== null && value === v.etag;
  const date = Date.parse(value);
  return Number.isFinite(date) && v.etag !== null && date === Date.parse(v.lastModified);
}

/** `Content-Range` of a served range: `bytes A-B/LEN`, or `bytes A-B/*` while the complete length is unknown (RFC 8673). */
export function contentRange(r: ByteRange, size: number | null): string {
  return `bytes ${r.start}-${r.end}/${size === null ? '*' : size}`;
}

/** `Content-Range` of a 416: `bytes *\/LEN` (the length written so far while the file grows). */
export function unsatisfiedRange(size: number): string {
  return `bytes */${size}`;
}
