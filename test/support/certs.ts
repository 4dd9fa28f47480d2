/**
 * Test PKI made with the real `openssl` at test time: a CA, a server certificate (localhost, 127.0.0.1, ::1 and any
 * extra IPs) and a client certificate signed by it, plus a second, unrelated CA and a client certificate of it, and a
 * bearer token file. Keys are EC P-256 (fast to make), files mode 0600 like real ones.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Paths of the files made by {@link makeTestPki}. */
export interface TestPki {
  /** The CA certificate (what clients trust: `--tls-ca`; what the server checks clients with: `--tls-client-ca`). */
  ca: string;
  /** Server certificate and key (`--tls-cert`, `--tls-key`). */
  serverCert: string;
  serverKey: string;
  /** Client certificate and key signed by {@link ca} (mutual TLS). */
  clientCert: string;
  clientKey: string;
  /** Another CA, which signed nothing of the server's. */
  otherCa: string;
  /** A client certificate and key signed by {@link otherCa}. */
  otherClientCert: string;
  otherClientKey: string;
  /** A file holding the bearer token (64 hex characters). */
  tokenFile: string;
  /** The token itself. */
  token: string;
}

async function openssl(dir: string, ...args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir });
}

async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`,
    '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
}

async function makeLeaf(dir: string, name: string, ca: string, ext: string): Promise<void> {
  await openssl(dir, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
  await fsp.writeFile(path.join(dir, `${name}.ext`), ext);
  await openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`,
    '-days', '2', '-extfile', `${name}.ext`);
}

/** Make the test PKI in `dir` (an existing scratch folder); `ips` are added to the server certificate's names. */
export async function makeTestPki(dir: string, ips: readonly string[] = []): Promise<TestPki> {
  await makeCa(dir, 'ca');
  await makeCa(dir, 'other-ca');
  const san = ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1', ...ips.map((ip) => `IP:${ip}`)].join(',');
  await makeLeaf(dir, 'server', 'ca', `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  await makeLeaf(dir, 'client', 'ca', 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');
  await makeLeaf(dir, 'other-client', 'other-ca', 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');
  const token = randomBytes(32).toString('hex');
  const tokenFile = path.join(dir, 'token');
  await fsp.writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  for (const f of await fsp.readdir(dir)) if (f.endsWith('.key')) await fsp.chmod(path.join(dir, f), 0o600);
  const p = (f: string): string => path.join(dir, f);
  return {
    ca: p('ca.pem'), serverCert: p('server.pem'), serverKey: p('server.key'), clientCert: p('client.pem'), clientKey: p('client.key'),
    otherCa: p('other-ca.pem'), otherClientCert: p('other-client.pem'), otherClientKey: p('other-client.key'), tokenFile, token,
  };
}
