/**
 * One option table per command: the parser (node:util parseArgs) and the `--help` text are both made from it, so they
 * cannot drift; and one parser for every numeric option, with one message style:
 * `--rt-priority must be an integer 0..99, got "100"`. Errors are CuemuxError INVALID_ARGUMENT (exit code 2) and end
 * with the command's usage line and a hint to its `--help`.
 *
 * node:util parseArgs is kept rather than a CLI library (commander, yargs): the tables here are ~150 lines, add no
 * dependency, and keep each command's lazy loading (`cuemux status` must not load FFmpeg); a library would replace
 * the table and help layout but not the numeric rules, the environment/config layering of `serve`, nor the
 * per-command exit codes.
 */
import { parseArgs } from 'node:util';
import { CuemuxError, errorMessage } from '../common/errors';

/** What a numeric option accepts. */
export interface NumberRule {
  /**
   * `integer` (digits only), `number` (decimal, e.g. 0.25), or `rate` (a frame rate: 60, 29.97, 30000/1001; the
   * well-known NTSC rates map to their exact fractions).
   */
  kind: 'integer' | 'number' | 'rate';
  /** Smallest value accepted (inclusive unless {@link minExclusive}); absent = no lower bound. */
  min?: number;
  /** The value must be above {@link min}, not equal to it. Default false. */
  minExclusive?: boolean;
  /** Largest value accepted (inclusive); absent = no upper bound. */
  max?: number;
  /** Unit of the value as the help and messages name it, e.g. "seconds", "ms", "bytes". Absent = a count. */
  unit?: string;
  /** Words accepted besides numbers (e.g. "off" for a port), passed through as they are. */
  words?: readonly string[];
}

/** One option of a command. */
export interface OptionSpec {
  /** Long name without the dashes, e.g. `lock-timeout`. */
  name: string;
  /** One-letter alias without the dash. */
  short?: string;
  /** `boolean` for a flag; `string` for an option with a value (default). */
  type?: 'string' | 'boolean';
  /** May be repeated (values collected in order). Default false. */
  multiple?: boolean;
  /** Placeholder of the value in the help, e.g. `N`, `DIR`, `HOST:PORT`. */
  arg?: string;
  /** What it does, one sentence (the help adds the numeric rule, unit and default). */
  help: string;
  /** The default as the help shows it; absent = no default line (a flag, or "not set"). */
  default?: string | (() => string);
  /** For numeric options: what is accepted; parsed by {@link parseNumber}. */
  number?: NumberRule;
  /** Heading this option is listed under in the help (options keep table order within a heading). */
  group?: string;
}

/** A command (or subcommand) and its options. */
export interface CommandSpec {
  /** The words after `cuemux`, e.g. `index build`. */
  command: string;
  /** What follows the command in the usage line, e.g. `[options] <paths...>`. */
  synopsis: string;
  /** What the command does, a short paragraph. */
  summary: string;
  /** Every option of the command (`--help` is added by the parser). */
  options: readonly OptionSpec[];
  /** Positional arguments are allowed. Default false. */
  positionals?: boolean;
  /** Text after the options: examples, environment, exit codes. */
  footer?: string;
}

/** The `-h, --help` option every command has. */
export const HELP_OPTION: OptionSpec = { name: 'help', short: 'h', type: 'boolean', help: 'print this help (every option, its unit and default) and exit 0' };

/** Help text column where option descriptions start. */
const DESCRIPTION_COLUMN = 25;
/** Help text width the descriptions wrap at. */
const WIDTH = 118;

function rangePhrase(r: NumberRule): string {
  const hasMin = r.min !== undefined;
  const hasMax = r.max !== undefined;
  if (hasMin && hasMax && r.minExclusive !== true) return `${r.min}..${r.max}`;
  const low = hasMin ? `${r.minExclusive === true ? '>' : '>='} ${r.min}` : '';
  const high = hasMax ? `<= ${r.max}` : '';
  return [low, high].filter(Boolean).join(' and ');
}

/** The rule in words, as messages and help say it: `an integer 0..99`, `a number > 0 and <= 10 (seconds)`. */
export function describeRule(r: NumberRule): string {
  const kind = r.kind === 'integer' ? 'an integer' : r.kind === 'number' ? 'a number' : 'like 60, 29.97 or 30000/1001,';
  const range = rangePhrase(r);
  const words = r.words && r.words.length > 0 ? ` or ${r.words.map((w) => `"${w}"`).join(' or ')}` : '';
  return `${kind}${range ? ` ${range}` : ''}${r.unit ? ` (${r.unit})` : ''}${words}`;
}

function invalid(flag: string, raw: string, r: NumberRule): CuemuxError {
  return new CuemuxError('INVALID_ARGUMENT', `${flag} must be ${describeRule(r)}, got ${JSON.stringify(raw)}`);
}

function inRange(n: number, r: NumberRule): boolean {
  if (!Number.isFinite(n)) return false;
  if (r.min !== undefined && (r.minExclusive === true ? n <= r.min : n < r.min)) return false;
  return r.max === undefined || n <= r.max;
}

const INTEGER = /^[+-]?\d+$/;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)$/;
/** Display and timecode rates whose decimal names stand for NTSC fractions. */
const NTSC: Readonly<Record<string, readonly [number, number]>> = {
  '23.976': [24000, 1001], '29.97': [30000, 1001], '47.952': [48000, 1001], '59.94': [60000, 1001],
};

/**
 * Parse the value `raw` of the numeric option `flag` (e.g. `--jobs`) by `rule`; a word of `rule.words` is returned as
 * it is. Throws INVALID_ARGUMENT `--jobs must be an integer >= 1, got "many"` otherwise. For `rate` rules the result
 * is the rate as a number (see {@link parseRate} for the exact fraction).
 */
export function parseNumber(flag: string, raw: string, rule: NumberRule): number;
export function parseNumber(flag: string, raw: string, rule: NumberRule & { words: readonly string[] }): number | string;
export function parseNumber(flag: string, raw: string, rule: NumberRule): number | string {
  if (rule.words?.includes(raw) === true) return raw;
  if (rule.kind === 'rate') {
    const r = parseRate(flag, raw, rule);
    return r.num / r.den;
  }
  const syntax = rule.kind === 'integer' ? INTEGER : DECIMAL;
  const n = syntax.test(raw) ? Number(raw) : NaN;
  if (!inRange(n, rule)) throw invalid(flag, raw, rule);
  return n;
}

/** Parse a rate option (`60`, `29.97`, `30000/1001`) into an exact fraction, by the rule's bounds (on num/den). */
export function parseRate(flag: string, raw: string, rule: NumberRule): { num: number; den: number } {
  const known = NTSC[raw];
  if (known !== undefined) return { num: known[0], den: known[1] };
  const m = /^(\d+)(?:\/(\d+))?$/.exec(raw);
  const num = m === null ? NaN : Number(m[1]);
  const den = m === null ? NaN : Number(m[2] ?? '1');
  if (!(den > 0) || !inRange(num / den, rule)) throw invalid(flag, raw, rule);
  return { num, den };
}

/** What {@link parseCommand} found. */
export class ParsedOptions {
  /** Positional arguments, in order. */
  readonly positionals: string[];
  readonly #spec: CommandSpec;
  readonly #values: Readonly<Record<string, string | boolean | Array<string | boolean> | undefined>>;

  /** @internal */
  constructor(spec: CommandSpec, values: Record<string, string | boolean | Array<string | boolean> | undefined>, positionals: string[]) {
    this.#spec = spec;
    this.#values = values;
    this.positionals = positionals;
  }

  #option(name: string): OptionSpec {
    const o = this.#spec.options.find((x) => x.name === name);
    if (o === undefined) throw new Error(`cuemux ${this.#spec.command} has no option --${name}`); // a programming error
    return o;
  }

  /** The value of string option `name`, or undefined when not given (the last one when repeated). */
  string(name: string): string | undefined {
    this.#option(name);
    const v = this.#values[name];
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    return typeof last === 'string' ? last : undefined;
  }

  /** Every value of a repeatable option, in order (empty when not given). */
  strings(name: string): string[] {
    this.#option(name);
    const v = this.#values[name];
    return (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((x): x is string => typeof x === 'string');
  }

  /** A flag: true when given. */
  flag(name: string): boolean {
    this.#option(name);
    return this.#values[name] === true;
  }

  /**
   * The numeric option `name` parsed by its rule ({@link parseNumber}), or undefined when not given. A bad value is
   * a {@link usageError}.
   */
  number(name: string): number | undefined {
    const o = this.#option(name);
    if (o.number === undefined) throw new Error(`--${name} of cuemux ${this.#spec.command} is not numeric`);
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    try {
      return parseNumber(`--${name}`, raw, o.number);
    } catch (e) {
      throw usageError(this.#spec, errorMessage(e));
    }
  }

  /** The rate option `name` as an exact fraction ({@link parseRate}), or undefined when not given. */
  rate(name: string): { num: number; den: number } | undefined {
    const o = this.#option(name);
    if (o.number?.kind !== 'rate') throw new Error(`--${name} of cuemux ${this.#spec.command} is not a rate`);
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    try {
      return parseRate(`--${name}`, raw, o.number);
    } catch (e) {
      throw usageError(this.#spec, errorMessage(e));
    }
  }

  /** The values as parseArgs returned them (strings, flags, lists), by long name. */
  get values(): Readonly<Record<string, string | boolean | Array<string | boolean> | undefined>> {
    return this.#values;
  }

  /** Whether option `name` was given. */
  has(name: string): boolean {
    this.#option(name);
    return this.#values[name] !== undefined;
  }
}

/** The usage line and the hint that end every usage error. */
export function usageHint(spec: CommandSpec): string {
  return `${usageLine(spec)}\nRun "${['cuemux', spec.command].filter(Boolean).join(' ')} --help" for every option, its unit and default.`;
}

/** `Usage: cuemux <command> <synopsis>`. */
function usageLine(spec: CommandSpec): string {
  return `Usage: ${['cuemux', spec.command, spec.synopsis].filter(Boolean).join(' ')}`;
}

/** A usage error of `spec`'s command: INVALID_ARGUMENT, the message, then the usage line and the `--help` hint. */
export function usageError(spec: CommandSpec, message: string): CuemuxError {
  return new CuemuxError('INVALID_ARGUMENT', `${message}\n\n${usageHint(spec)}`);
}

/** parseArgs's message in our words (its own names the option and suggests `--` tricks a technician does not need). */
function parseArgsMessage(e: unknown): string {
  const err = e as { code?: unknown; message?: unknown };
  const message = typeof err.message === 'string' ? err.message : String(e);
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const m = /^Unknown option '([^']+)'/.exec(message);
    return `unknown option ${m?.[1] ?? message}`;
  }
  if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    const m = /^Unexpected argument '([^']+)'/.exec(message);
    return `unexpected argument ${m?.[1] ?? message} (this command takes options only)`;
  }
  return message.replace(/\n/g, ' ');
}

/**
 * `--nice -5` as `--nice=-5`: parseArgs takes a value starting with a dash for an option of its own and refuses it,
 * but a negative number after an option that takes a value can only be that value.
 */
function joinNegativeNumbers(spec: CommandSpec, args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') return [...out, ...args.slice(i)];
    const o = a.startsWith('--') && !a.includes('=') ? spec.options.find((x) => `--${x.name}` === a) : undefined;
    const next = args[i + 1];
    if (o !== undefined && (o.type ?? 'string') === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/**
 * Parse `args` by `spec`'s table. Returns `'help'` when `-h`/`--help` is among them (even beside a bad option: the
 * technician asking for help gets it). Unknown options and missing values throw {@link usageError}. Numeric values
 * are checked when read ({@link ParsedOptions.number}), so a command checks them in the order it documents.
 */
export function parseCommand(spec: CommandSpec, args: readonly string[]): ParsedOptions | 'help' {
  const options = Object.fromEntries([...spec.options, HELP_OPTION].map((o) => [o.name, {
    type: o.type ?? 'string', ...(o.short !== undefined ? { short: o.short } : {}), ...(o.multiple === true ? { multiple: true } : {}),
  }]));
  let parsed;
  try {
    parsed = parseArgs({ args: joinNegativeNumbers(spec, args), options, strict: true, allowPositionals: spec.positionals === true });
  } catch (e) {
    const end = args.indexOf('--');
    if ((end < 0 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h')) return 'help';
    throw usageError(spec, parseArgsMessage(e));
  }
  if (parsed.values.help === true) return 'help';
  return new ParsedOptions(spec, parsed.values, parsed.positionals);
}

function wrap(text: string, indent: number, first: number): string[] {
  const lines: string[] = [];
  let line = '';
  let room = WIDTH - first;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line !== '' && line.length + 1 + word.length > room) {
      lines.push(line);
      line = word;
      room = WIDTH - indent;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** The help line(s) of one option: name, placeholder, description, rule, unit and default. */
export function optionHelp(o: OptionSpec): string {
  const names = `${o.short !== undefined ? `-${o.short}, ` : ''}--${o.name}${o.arg !== undefined ? ` ${o.arg}` : ''}`;
  const def = typeof o.default === 'function' ? o.default() : o.default;
  const facts = [
    ...(o.number !== undefined ? [describeRule(o.number)] : []),
    ...(o.multiple === true ? ['repeatable'] : []),
    ...(def !== undefined ? [`default ${def}`] : []),
  ];
  const text = `${o.help}${facts.length > 0 ? ` [${facts.join('; ')}]` : ''}`;
  const head = `  ${names}`;
  const pad = head.length + 2 <= DESCRIPTION_COLUMN ? head.padEnd(DESCRIPTION_COLUMN) : `${head}\n${' '.repeat(DESCRIPTION_COLUMN)}`;
  const body = wrap(text, DESCRIPTION_COLUMN, DESCRIPTION_COLUMN);
  return `${pad}${body.join(`\n${' '.repeat(DESCRIPTION_COLUMN)}`)}`;
}

/** The full `--help` text of a command, made from its table. */
export function helpText(spec: CommandSpec): string {
  const out = [usageLine(spec), '', ...wrap(spec.summary, 0, 0), ''];
  // Options without a heading first, then each heading in the order it first appears.
  out.push('Options:', optionHelp(HELP_OPTION), ...spec.options.filter((o) => o.group === undefined).map(optionHelp));
  const groups = [...new Set(spec.options.map((o) => o.group).filter((g): g is string => g !== undefined))];
  for (const g of groups) out.push('', `${g}:`, ...spec.options.filter((o) => o.group === g).map(optionHelp));
  if (spec.footer !== undefined) out.push('', spec.footer.trimEnd());
  return `${out.join('\n')}\n`;
}
