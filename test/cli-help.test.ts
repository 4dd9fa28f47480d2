/**
 * `--help` on every command and subcommand, and the one message style of numeric options, through the real CLI
 * (bin/cuemux.js in a child process). The help must list every option of the command's table with its rule, unit and
 * default; and every numeric option the help lists must be one the parser knows and checks by that rule (a bad value
 * gives its message, not "unknown option"), so the help and the parser cannot drift apart.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CUEMUX_BIN, REPO_ROOT, runCli, type CliResult } from './support/cli';
import { spawnServer } from './support/server';
import { scratchDir } from './support/tmp';
import { eachAtOnce } from './support/wait';
import { MAIN, VERSION } from '../src/cli/main';
import { INDEX_COMMANDS } from '../src/cli/index-usage';
import { SERVE, SERVE_OPTIONS } from '../src/cli/serve-options';
import { STATUS } from '../src/cli/client-options';
import { PLAY_AUDIO, PLAY_VIDEO } from '../src/cli/play-options';
import { describeRule, parseNumber, parseRate, type CommandSpec, type NumberRule } from '../src/cli/options';
import { ENV_NAMES, type ServerConfig } from '../src/server/server-config';
import { isCuemuxError } from '../src/common/errors';

/** Every command and subcommand with an option table. */
const COMMANDS: readonly CommandSpec[] = [MAIN, VERSION, SERVE, ...INDEX_COMMANDS, STATUS, PLAY_AUDIO, PLAY_VIDEO];

/** The command words of a spec (`index build` → ['index', 'build']; cuemux itself → []). */
const words = (spec: CommandSpec): string[] => spec.command.split(' ').filter(Boolean);

/**
 * CLI runs at a time where a test runs many (one per option): each is a short node start that is mostly waiting for
 * the process and its disk reads, so four side by side take about a quarter of the time of one after the other.
 */
const CLI_AT_ONCE = 4;

/** Help text with line wrapping undone, so a phrase split over two lines is found. */
const flat = (text: string): string => text.replace(/\s+/g, ' ');

/** The usage error's tail every command prints: its usage line and the hint to its --help. */
function assertUsageHint(r: CliResult, spec: CommandSpec): void {
  const name = ['cuemux', ...words(spec)].join(' ');
  assert.match(r.stderr, new RegExp(`Usage: ${name} `), r.stderr);
  assert.ok(r.stderr.includes(`Run "${name} --help"`), r.stderr);
}

describe('cuemux --help on every command', function () {
  this.timeout(120_000);

  for (const spec of COMMANDS) {
    const label = ['cuemux', ...words(spec)].join(' ');
    it(`${label} --help: exit 0, the usage line, every option of its table with its rule, unit and default`, async function () {
      const r = await runCli([...words(spec), '--help']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.match(r.stdout, new RegExp(`^Usage: ${label}`));
      const text = flat(r.stdout);
      assert.ok(text.includes('-h, --help '), 'the help option itself');
      for (const o of spec.options) {
        assert.ok(new RegExp(`(^|\\s)--${o.name}(\\s|$)`).test(r.stdout), `${label} --help lists --${o.name}`);
        if (o.number !== undefined) assert.ok(text.includes(describeRule(o.number)), `--${o.name}: its rule "${describeRule(o.number)}"`);
        if (o.number?.unit !== undefined) assert.ok(text.includes(`(${o.number.unit})`), `--${o.name}: its unit`);
        const def = typeof o.default === 'function' ? o.default() : o.default;
        if (def !== undefined) assert.ok(text.includes(flat(`default ${def}`)), `--${o.name}: its default "${def}"`);
      }
      // -h is the same.
      const short = await runCli([...words(spec), '-h']);
      assert.equal(short.code, 0);
      assert.equal(short.stdout, r.stdout);
    });
  }

  it('cuemux index --help lists every subcommand; cuemux --help lists every command', async function () {
    const index = await runCli(['index', '--help']);
    assert.equal(index.code, 0);
    for (const spec of INDEX_COMMANDS) assert.match(index.stdout, new RegExp(`^  ${words(spec)[1]} `, 'm'));
    const main = await runCli(['--help']);
    assert.equal(main.code, 0);
    for (const c of ['index', 'serve', 'status', 'play-audio', 'play-video', 'version']) assert.match(main.stdout, new RegExp(`^  ${c}\\b`, 'm'));
  });

  it('--help wins over a bad option or value beside it (the technician asking for help gets it)', async function () {
    const r = await runCli(['index', 'build', '--jobs', 'lots', '--no-such-option', '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Usage: cuemux index build /);
  });

  it('serve has a flag for every server setting, and its help names each environment variable', async function () {
    const keys = new Set(SERVE_OPTIONS.map((o) => o.key).filter((k): k is keyof ServerConfig => k !== undefined));
    for (const key of Object.keys(ENV_NAMES) as Array<keyof ServerConfig>) assert.ok(keys.has(key), `a serve flag sets ${key}`);
    const r = await runCli(['serve', '--help']);
    for (const env of Object.values(ENV_NAMES)) assert.ok(flat(r.stdout).includes(`(env ${env})`), `serve --help names ${env}`);
  });

  it('an unknown option: exit 2 (usage), "unknown option", the usage line and the hint to --help, on every command', async function () {
    await eachAtOnce(COMMANDS.filter((s) => s !== VERSION), CLI_AT_ONCE, async (spec) => {
      const r = await runCli([...words(spec), '--no-such-option']);
      assert.equal(r.code, 2, `${spec.command}: ${r.stderr}`);
      assert.match(r.stderr, /^cuemux: unknown option --no-such-option\n/);
      assertUsageHint(r, spec);
    });
  });
});

describe('numeric options: one parser, one message style', function () {
  this.timeout(120_000);

  it('every numeric option of every command refuses a word with "--NAME must be <rule>, got "abc"" and exit 2', async function () {
    const options = COMMANDS.flatMap((spec) => spec.options.filter((x) => x.number !== undefined).map((o) => ({ spec, o })));
    await eachAtOnce(options, CLI_AT_ONCE, async ({ spec, o }) => {
      // Positional commands get a path that exists: the option is checked before any media is read, or after the
      // path is found, never skipped.
      const args = [...words(spec), `--${o.name}`, 'abc', ...(spec.positionals === true ? ['.'] : [])];
      const r = await runCli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      const rule = o.number === undefined ? '' : describeRule(o.number);
      assert.ok(r.stderr.startsWith(`cuemux: --${o.name} must be ${rule}, got "abc"\n`), `${args.join(' ')}: ${r.stderr}`);
      assertUsageHint(r, spec);
    });
  });

  it('the messages, as a technician reads them', async function () {
    const cases: Array<[string[], string]> = [
      [['index', 'build', '--jobs', 'many', '.'], '--jobs must be an integer 1..256, got "many"'],
      [['index', 'build', '--lock-timeout', '2.5', '.'], '--lock-timeout must be an integer >= 1 (seconds), got "2.5"'],
      [['play-video', '--fps', 'fast'], '--fps must be like 60, 29.97 or 30000/1001, > 0 and <= 1000 (ticks per second), got "fast"'],
      [['play-audio', '--nice', '-21'], '--nice must be an integer -20..19, got "-21"'],
      [['play-audio', '--rt-priority', '100'], '--rt-priority must be an integer 0..99, got "100"'],
      [['serve', '--lead-seconds', '0'], '--lead-seconds must be a number > 0 and <= 10 (seconds), got "0"'],
      [['serve', '--osc-port', '70000'], '--osc-port must be an integer 0..65535 or "off" or "none", got "70000"'],
      [['serve', '--max-clients', '1e3'], '--max-clients must be an integer >= 1, got "1e3"'],
    ];
    await eachAtOnce(cases, CLI_AT_ONCE, async ([args, message]) => {
      const r = await runCli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.split('\n')[0], `cuemux: ${message}`);
    });
  });

  it('parses what the rules accept and nothing else (digits only for integers; NTSC rates exactly)', function () {
    const bad = (raw: string, rule: NumberRule): void => {
      assert.throws(() => parseNumber('--x', raw, rule), (e: unknown) => isCuemuxError(e, 'INVALID_ARGUMENT') && e.message.startsWith('--x must be '), raw);
    };
    const int = { kind: 'integer', min: 1, max: 256 } as const;
    assert.equal(parseNumber('--x', '256', int), 256);
    assert.equal(parseNumber('--x', '1', int), 1);
    for (const raw of ['', ' 5', '0x10', '1e2', '2.5', '0', '257', 'Infinity', '5 ']) bad(raw, int);
    const secs = { kind: 'number', min: 0, minExclusive: true, max: 10, unit: 'seconds' } as const;
    assert.equal(parseNumber('--x', '0.25', secs), 0.25);
    assert.equal(parseNumber('--x', '10', secs), 10);
    for (const raw of ['0', '10.5', '-1', 'NaN', '.', '1,5']) bad(raw, secs);
    assert.equal(parseNumber('--x', '-20', { kind: 'integer', min: -20, max: 19 }), -20);
    assert.equal(parseNumber('--x', 'off', { kind: 'integer', min: 0, max: 65535, words: ['off'] }), 'off');
    const rate = { kind: 'rate', min: 0, minExclusive: true, max: 1000 } as const;
    assert.deepEqual(parseRate('--fps', '29.97', rate), { num: 30000, den: 1001 });
    assert.deepEqual(parseRate('--fps', '30000/1001', rate), { num: 30000, den: 1001 });
    assert.deepEqual(parseRate('--fps', '50', rate), { num: 50, den: 1 });
    for (const raw of ['0', '1001', '25/0', 'fast', '-25']) assert.throws(() => parseRate('--fps', raw, rate), /--fps must be like 60/);
  });

  it('a negative number after an option that takes one is its value (--nice -5), not an option', async function () {
    // -5 is accepted by the rule: the run goes on to --duration, whose bad value is then the error.
    const r = await runCli(['play-audio', '--nice', '-5', '--duration', 'x']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^cuemux: --duration must be a number > 0 \(seconds\), got "x"/);
  });
});

describe('what the server prints to connect pastes as is (npm start, a checkout: cuemux is not on the PATH)', function () {
  this.timeout(120_000);

  it('prints node bin/cuemux.js ... relative to the folder npm start was typed in, else absolute; each runs as printed', async function () {
    const root = await scratchDir('paste-root');
    const run = await scratchDir('paste-run');
    await fsp.chmod(run, 0o700);
    const socket = path.join(run, 'cuemux.sock');
    // PATH without any `cuemux`, as in a fresh checkout.
    const env = { PATH: path.dirname(process.execPath), CUEMUX_LOG_LEVEL: 'warn' };
    for (const [initCwd, expected] of [[REPO_ROOT, 'node bin/cuemux.js'], [run, `node ${CUEMUX_BIN}`]] as const) {
      const { child, stdout } = await spawnServer(['--socket', socket, '--media-root', root, '--state-file', 'none'], { ...env, INIT_CWD: initCwd });
      try {
        const line = /^ {2}(node .*status --socket .*)$/m.exec(stdout())?.[1];
        assert.equal(line, `${expected} status --socket ${socket}`, stdout());
        // Typed in that folder, the printed command works.
        const r = spawnSync('sh', ['-c', line], { cwd: initCwd, env: { ...process.env, ...env }, encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /^Show clock: stopped/m);
      } finally {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
    }
  });
});
