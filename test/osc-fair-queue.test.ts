/**
 * Datagrams read together are handled cheapest sender first (src/server/osc-fair-queue.ts): a console's datagram that
 * the kernel holds behind a flood's is handled before the rest of the flood, and each sender's keep their order.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { FairQueue } from '../src/server/osc-fair-queue';
import { OscEndpoint } from '../src/server/osc-endpoint';
import { waitFor } from './support/wait';

describe('OSC fair queue', function () {
  it('serves the sender with the least recent cost first, each sender in order', function () {
    const q = new FairQueue<string>();
    q.charge('10.0.0.1', 5e6);
    for (const x of ['f1', 'f2', 'f3']) q.push('10.0.0.1', x);
    q.push('10.0.0.2', 'c1');
    q.push('10.0.0.2', 'c2');
    const order: string[] = [];
    for (let n = q.shift(); n !== undefined; n = q.shift()) {
      order.push(n.item);
      q.charge(n.sender, 1000);
    }
    assert.deepEqual(order, ['c1', 'c2', 'f1', 'f2', 'f3']);
    assert.equal(q.size, 0);
  });

  it('a console datagram waiting in the socket behind 24 of a flood\'s is handled second, not 25th', async function () {
    const endpoint = await OscEndpoint.open({ host: '127.0.0.1', port: 0 });
    const seen: string[] = [];
    endpoint.on('request', (req) => { seen.push(`${req.from.address} ${req.address}`); });
    try {
      // Sent by another process while this thread is blocked in execFileSync: the 25 datagrams wait in the socket
      // together and are read in one batch (libuv reads up to 32 per readable event), the console's last.
      const script = `const d = require('node:dgram'); const m = (a) => Buffer.concat([Buffer.from(a + '\\0'.repeat(4 - a.length % 4), 'latin1'), Buffer.from(',\\0\\0\\0', 'latin1')]);
        const f = d.createSocket('udp4'); const c = d.createSocket('udp4');
        f.bind(0, '127.0.0.2', () => c.bind(0, '127.0.0.1', async () => {
          for (let i = 0; i < 24; i++) await new Promise((r) => f.send(m('/flood/' + i), ${endpoint.address.port}, '127.0.0.1', r));
          await new Promise((r) => c.send(m('/console'), ${endpoint.address.port}, '127.0.0.1', r));
          f.close(); c.close();
        }));`;
      execFileSync(process.execPath, ['-e', script]);
      await waitFor('25 requests', () => (seen.length >= 25 ? true : undefined), 10_000);
      const at = seen.indexOf('127.0.0.1 /console');
      // The first flood datagram goes first (no sender has a cost yet); then the console, which has cost nothing.
      assert.ok(at >= 0 && at <= 1, `the console's datagram was handled at position ${at + 1}: ${seen.join(', ')}`);
      assert.deepEqual(seen.filter((s) => s.includes('/flood/')), Array.from({ length: 24 }, (_, i) => `127.0.0.2 /flood/${i}`), 'the flood in order');
    } finally {
      await endpoint.close();
    }
  });
});
