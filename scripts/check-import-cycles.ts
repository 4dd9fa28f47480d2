/**
 * Import-cycle check (run by `npm test` after lint; grpc-js runs madge for the same job): reads every TypeScript
 * file under src/, scripts/ and test/ with the TypeScript compiler's own import scanner, follows the relative imports
 * (`import type` and `require` included: a type cycle between two folders is a layering cycle all the same), and
 * exits 1 printing each cycle it finds. Exit 0 and one line when there is none.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';

const ROOT = path.resolve(__dirname, '..', '..');
const FOLDERS = ['src', 'scripts', 'test'];

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) out.push(...tsFiles(p));
    else if (d.name.endsWith('.ts') && !d.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The file a relative specifier names (`./x` → x.ts or x/index.ts), or null for a package or a non-TS file. */
function resolve(from: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null;
  const base = path.resolve(path.dirname(from), spec);
  for (const f of [`${base}.ts`, path.join(base, 'index.ts')]) if (fs.existsSync(f)) return f;
  return null;
}

const files = FOLDERS.flatMap((f) => (fs.existsSync(path.join(ROOT, f)) ? tsFiles(path.join(ROOT, f)) : []));
const edges = new Map<string, string[]>();
for (const f of files) {
  const { importedFiles } = ts.preProcessFile(fs.readFileSync(f, 'utf8'), true, true);
  edges.set(f, [...new Set(importedFiles.map((i) => resolve(f, i.fileName)).filter((t): t is string => t !== null))]);
}

// Tarjan's strongly connected components: every component of more than one file (or a file importing itself) holds
// a cycle; one cycle through each is printed.
let counter = 0;
const num = new Map<string, number>();
const low = new Map<string, number>();
const stack: string[] = [];
const onStack = new Set<string>();
const components: string[][] = [];
function visit(v: string): void {
  num.set(v, counter);
  low.set(v, counter++);
  stack.push(v);
  onStack.add(v);
  for (const w of edges.get(v) ?? []) {
    if (!num.has(w)) {
      visit(w);
      low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
    } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) ?? 0, num.get(w) ?? 0));
  }
  if (low.get(v) !== num.get(v)) return;
  const c: string[] = [];
  for (let w = stack.pop(); w !== undefined; w = w === v ? undefined : stack.pop()) {
    onStack.delete(w);
    c.push(w);
  }
  if (c.length > 1 || (edges.get(v) ?? []).includes(v)) components.push(c);
}
for (const f of files) if (!num.has(f)) visit(f);

/** A shortest path of imports from `start` back to itself inside `component` (breadth first). */
function cycleThrough(start: string, component: ReadonlySet<string>): string[] {
  const prev = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    for (const w of edges.get(queue[i]) ?? []) {
      if (!component.has(w)) continue;
      if (w === start) {
        const back = [start];
        for (let at: string | undefined = queue[i]; at !== undefined && at !== start; at = prev.get(at)) back.unshift(at);
        return [start, ...back];
      }
      if (!prev.has(w)) {
        prev.set(w, queue[i]);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

const rel = (f: string): string => path.relative(ROOT, f);
if (components.length === 0) {
  process.stdout.write(`import cycles: none in ${files.length} files\n`);
} else {
  for (const c of components) {
    const members = [...c].sort();
    process.stderr.write(`import cycle: ${cycleThrough(members[0], new Set(c)).map(rel).join(' → ')}` +
      (c.length > 2 ? ` (${c.length} files import each other: ${members.map(rel).join(', ')})` : '') + '\n');
  }
  process.stderr.write(`${components.length} import cycle(s): make one side stop importing the other\n`);
  process.exitCode = 1;
}
