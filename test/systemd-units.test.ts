/**
 * docs/systemd units: `systemd-analyze verify` accepts them without a warning (where systemd-analyze is installed),
 * the server runs with the memory settings `npm start` uses (read from scripts/start.sh, so the two cannot drift),
 * and the players with real-time limits, a restart policy and an ordering after the server.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { constants, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from './support/cli';
import { scratchDir } from './support/tmp';
import { skipBecause } from './support/check';

const UNITS = path.join(REPO_ROOT, 'docs', 'systemd');
const SERVER = 'cuemux.service';
const PLAYERS = ['cuemux-play-video@.service', 'cuemux-play-audio@.service'];

/** `Key=value` lines of a unit, by key (repeated keys keep every value). */
async function unitKeys(file: string): Promise<Map<string, string[]>> {
  const keys = new Map<string, string[]>();
  for (const line of (await fsp.readFile(path.join(UNITS, file), 'utf8')).split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m !== null) keys.set(m[1], [...(keys.get(m[1]) ?? []), m[2]]);
  }
  return keys;
}

function one(keys: Map<string, string[]>, key: string): string {
  const v = keys.get(key);
  assert.ok(v !== undefined && v.length === 1, `${key}= once, got ${JSON.stringify(v)}`);
  return v[0];
}

describe('docs/systemd units', function () {
  this.timeout(60_000);

  it('systemd-analyze verify: no error and no warning (the templates as instances)', async function () {
    if (spawnSync('sh', ['-c', 'command -v systemd-analyze']).status !== 0) skipBecause(this, 'systemd-analyze is not installed');
    const dir = await scratchDir('systemd');
    const files: string[] = [];
    // ExecStart must name an executable: where node is not /usr/bin/node, verify the units with this test's node.
    const node = await fsp.access('/usr/bin/node', constants.X_OK).then(() => '/usr/bin/node', () => process.execPath);
    for (const f of [SERVER, ...PLAYERS]) {
      const text = (await fsp.readFile(path.join(UNITS, f), 'utf8')).replaceAll('/usr/bin/node ', `${node} `);
      await fsp.writeFile(path.join(dir, f), text);
      const instance = f.replace('@.service', '@show.service');
      if (instance !== f) await fsp.writeFile(path.join(dir, instance), text);
      files.push(path.join(dir, instance));
    }
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...files], { encoding: 'utf8', cwd: dir });
    assert.equal(r.error, undefined);
    assert.equal(r.status, 0, r.stderr);
    // systemd 252 exits 0 on unknown keys and unparsable values: any line on stderr is a finding.
    assert.equal(r.stderr.trim(), '', r.stderr);
  });

  it('the server: the memory settings of npm start, restart on failure with a start limit, socket folder, hardening', async function () {
    const start = await fsp.readFile(path.join(REPO_ROOT, 'scripts', 'start.sh'), 'utf8');
    const u = await unitKeys(SERVER);
    const env = (u.get('Environment') ?? []).join(' ');
    // Every MALLOC_ variable start.sh sets, with the same value, and the same V8 flag.
    const malloc = [...start.matchAll(/(MALLOC_[A-Z_]+)="\$\{\1:-([^}]+)\}"/g)].map((m) => `${m[1]}=${m[2]}`);
    assert.ok(malloc.length >= 3, `start.sh sets MALLOC_ variables: ${malloc.join(' ')}`);
    for (const v of malloc) assert.ok(env.split(/\s+/).includes(v), `cuemux.service sets ${v}`);
    const v8 = /NODE_OPTIONS="(--[\w-]+=\d+)/.exec(start)?.[1];
    assert.ok(v8 !== undefined);
    assert.ok(env.includes(`NODE_OPTIONS=${v8}`), `cuemux.service sets NODE_OPTIONS=${v8}`);
    assert.equal(one(u, 'Restart'), 'on-failure');
    assert.ok(Number(one(u, 'Nice')) <= -10, 'the server ahead of other processes (the fault suite runs it at nice -10)');
    assert.ok(Number(one(u, 'StartLimitBurst')) > 0 && Number(one(u, 'StartLimitIntervalSec')) > 0);
    assert.equal(one(u, 'RuntimeDirectory'), 'cuemux');
    assert.ok(env.includes('CUEMUX_SOCKET=/run/cuemux/'), 'the socket in the runtime folder');
    assert.equal(one(u, 'User'), 'cuemux');
    assert.equal(one(u, 'NoNewPrivileges'), 'yes');
    assert.equal(one(u, 'ProtectSystem'), 'strict');
    assert.match(one(u, 'ExecStart'), /\/bin\/cuemux\.js serve$/);
  });

  for (const f of PLAYERS) {
    it(`${f}: real-time limits, Restart=always, after and wanting the server`, async function () {
      const u = await unitKeys(f);
      assert.ok(Number(one(u, 'LimitRTPRIO')) >= 10, 'room for the default --rt-priority 10');
      assert.ok(Number(one(u, 'LimitNICE')) <= -10, 'room for the default --nice -10');
      assert.ok(one(u, 'LimitMEMLOCK') !== '');
      assert.equal(one(u, 'Restart'), 'always');
      assert.equal(one(u, 'After'), SERVER);
      assert.equal(one(u, 'Wants'), SERVER);
      assert.equal(u.get('RestrictRealtime'), undefined, 'real time is not restricted');
      assert.match(one(u, 'ExecStart'), new RegExp(`/bin/cuemux\\.js ${f.replace('cuemux-', '').replace('@.service', '')} --output %i `));
    });
  }
});
