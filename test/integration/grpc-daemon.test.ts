/**
 * gRPC behind a real `padlock run --workers 2`: one h2c route from the config
 * file (`upstream: h2c://...`) and one from a real dockerd container with
 * nginx-proxy's `VIRTUAL_PROTO=grpc`, both on local names (padlock's local
 * CA, trusted through `padlock trust --pem` only). The gRPC server is a real
 * @grpc/grpc-js server in this process; the container runs on the host
 * network and only carries the env vars that route to it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { runCli } from '../support/cli.js';
import { startDockerd, type Dockerd, type TestContainer } from '../support/dockerd.js';
import { startPadlockRun, stopRunTest, waitFor, type RunningDaemon } from '../support/daemon.js';
import { tempConfigDir } from '../support/padlock.js';
import { freePort } from '../support/pebble.js';

/** No ACME CA is needed (local names only): a dead loopback one, so nothing could ever reach Let's Encrypt. */
const NO_CA = ['--server', 'https://127.0.0.1:1/dir'];
const FILE_NAME = 'grpc-file.localhost';
const ENV_NAME = 'grpc-env.localhost';

const bytes = { requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
const SERVICE = {
  echo: { path: '/test.Echo/Echo', requestStream: false, responseStream: false, ...bytes },
  watch: { path: '/test.Echo/Watch', requestStream: false, responseStream: true, ...bytes },
} satisfies grpc.ServiceDefinition;
const Client = grpc.makeGenericClientConstructor(SERVICE, 'Echo');
type EchoClient = InstanceType<typeof Client> & Record<keyof typeof SERVICE, (...args: any[]) => any>;

let dockerd: Dockerd;
let cfg: { dir: string; cleanup: () => Promise<void> };
let daemon: RunningDaemon;
let server: grpc.Server;
let grpcPort: number;
let rootPem: string;
const containers: TestContainer[] = [];
const clients: grpc.Client[] = [];
let releaseWatch: () => void = () => undefined;

async function startServer(port: number): Promise<grpc.Server> {
  const s = new grpc.Server();
  s.addService(SERVICE, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      if (call.request.toString() === 'missing') return cb({ code: grpc.status.NOT_FOUND, details: 'nothing called missing' });
      cb(null, Buffer.from(`echo:${call.request.toString()} via ${String(call.metadata.get('x-forwarded-host')[0])}`));
    },
    watch: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      call.write(Buffer.from('first'));
      releaseWatch = () => {
        call.write(Buffer.from('second'));
        call.end();
      };
    },
  });
  await new Promise<number>((resolve, reject) => s.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return s;
}

const client = (name: string): EchoClient => {
  const c = new Client(`127.0.0.1:${daemon.httpsPort}`, grpc.credentials.createSsl(Buffer.from(rootPem)), {
    'grpc.ssl_target_name_override': name,
    'grpc.default_authority': name,
  }) as EchoClient;
  clients.push(c);
  return c;
};

const echo = (c: EchoClient, text: string, deadlineMs = 10_000) =>
  new Promise<{ err: grpc.ServiceError | null; reply?: string }>((resolve) =>
    c.echo(Buffer.from(text), new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, reply?: Buffer) =>
      resolve({ err, ...(reply ? { reply: reply.toString() } : {}) })));

before(async () => {
  [dockerd, cfg] = await Promise.all([startDockerd(), tempConfigDir()]);
  grpcPort = await freePort();
  server = await startServer(grpcPort);
  const file = join(cfg.dir, 'padlock.yaml');
  await writeFile(file, ['sites:', `  - host: ${FILE_NAME}`, `    upstream: h2c://127.0.0.1:${grpcPort}`].join('\n'));
  daemon = await startPadlockRun(['--config', file, '--docker-host', dockerd.dockerHost, '--config-dir', join(cfg.dir, 'store'), '--workers', '2', ...NO_CA]);
  const root = await runCli(['trust', '--pem', '--config-dir', join(cfg.dir, 'store')]);
  assert.equal(root.code, 0, root.stderr);
  rootPem = root.stdout;
});

after(async () => {
  for (const c of clients) c.close();
  server?.forceShutdown();
  await stopRunTest({ daemon, containers, dockerd, cfg });
});

describe('gRPC through padlock run --workers 2', () => {
  it('serves a unary call and an error status on a config-file h2c route', async () => {
    const c = client(FILE_NAME);
    const ok = await waitFor('the h2c route to answer', async () => {
      const r = await echo(c, 'hello', 3_000);
      return r.err === null ? r : undefined;
    });
    assert.equal(ok.reply, `echo:hello via ${FILE_NAME}`);
    const missing = await echo(c, 'missing');
    assert.equal(missing.err?.code, grpc.status.NOT_FOUND);
    assert.equal(missing.err?.details, 'nothing called missing');
  });

  it('routes a container with VIRTUAL_PROTO=grpc (nginx-proxy env) to its gRPC server, added while running (hot reload)', async () => {
    const c = await dockerd.runContainer({
      name: 'grpc-env',
      env: { VIRTUAL_HOST: ENV_NAME, LETSENCRYPT_HOST: ENV_NAME, VIRTUAL_PROTO: 'grpc', VIRTUAL_PORT: String(grpcPort) },
    });
    containers.push(c);
    const cl = client(ENV_NAME);
    const ok = await waitFor('the VIRTUAL_PROTO=grpc route to answer', async () => {
      const r = await echo(cl, 'from-env', 3_000);
      return r.err === null ? r : undefined;
    }, 30_000);
    assert.equal(ok.reply, `echo:from-env via ${ENV_NAME}`);
    const status = await daemon.status();
    const route = status['routes'].find((r: { host: string }) => r.host === ENV_NAME);
    assert.ok(route, JSON.stringify(status['routes']));
    assert.equal(route.upstreams[0].url, `h2c://127.0.0.1:${grpcPort}`);
  });

  it('delivers a server-streaming message before the server ends the stream', async () => {
    const call = client(FILE_NAME).watch(Buffer.from('go'), new grpc.Metadata(), { deadline: Date.now() + 10_000 });
    const first = await new Promise<string>((resolve, reject) => {
      call.once('data', (b: Buffer) => resolve(b.toString()));
      call.once('error', reject);
    });
    assert.equal(first, 'first');
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('data', () => undefined);
    releaseWatch();
    assert.equal((await status).code, grpc.status.OK);
  });

  it('answers UNAVAILABLE, not a hang, once the gRPC server is gone', async () => {
    server.forceShutdown();
    const started = Date.now();
    const r = await echo(client(FILE_NAME), 'anyone?', 20_000);
    assert.equal(r.err?.code, grpc.status.UNAVAILABLE, r.err?.details);
    // At most the upstream wait (--upstream-wait, 5 s by default) and well before the call's deadline.
    assert.ok(Date.now() - started < 12_000, `${Date.now() - started} ms`);
  });
});
