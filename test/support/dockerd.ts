/**
 * A private Docker daemon (Debian `docker.io`, dockerd 20.10) for integration
 * tests, with a tiny image built from Debian's `busybox-static`.
 *
 * Each `startDockerd()` gets its own socket, data root, exec root and pidfile
 * in a short temp dir, so it never touches a system daemon. Network rules:
 * `--bridge=none --iptables=false --ip6tables=false`, no Docker networks are
 * ever created, and containers use the host network on 127.0.0.1 ports.
 * Nothing is pulled: the image is imported from a tar of busybox.
 *
 * `--live-restore` keeps containers running while the daemon restarts, as a
 * production daemon configured that way does; `restart()` relies on it to
 * test that routes stay valid across a daemon restart. `startDockerd({
 * liveRestore: false })` starts one without it, as Docker's default is: a
 * restart then stops every container, and brings back those with a restart
 * policy (`runContainer({ restartPolicy: 'always' })`). `stop()` therefore
 * removes every container first, then stops the daemon, then kills anything
 * left that belongs to this daemon (containerd shims are reparented to init).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, openSync, readSync, closeSync } from 'node:fs';
import { mkdtemp, mkdir, copyFile, symlink, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { onPath, requireProgram } from './programs.js';

const execFileP = promisify(execFile);

export interface RunContainerOptions {
  name: string;
  labels?: Record<string, string>;
  env?: Record<string, string>;
  /**
   * Runs `busybox httpd` on 127.0.0.1:port (host network) serving a page that says the container name.
   * It stops gracefully, as a real app does on SIGTERM: it stops accepting, then finishes the requests
   * it is answering before it exits (see `gracefulHttpd`).
   */
  port?: number;
  /** Declare `port` in ExposedPorts, as EXPOSE would (default true). */
  expose?: boolean;
  /** A Docker health check; `test` is the CMD array, e.g. `['/bin/busybox','wget','-q','-O-','http://127.0.0.1:8080/']`. */
  healthcheck?: { test: string[]; intervalMs?: number; retries?: number };
  /** Docker's restart policy (default none). */
  restartPolicy?: 'always' | 'unless-stopped';
}

export interface TestContainer {
  id: string;
  name: string;
  /** Stops it (SIGTERM through docker-init, killed after 1 s). */
  stop(): Promise<void>;
  /** Removes it, stopping it first if needed. */
  remove(): Promise<void>;
}

export interface Dockerd {
  socketPath: string;
  /** `unix://` + socketPath, for DOCKER_HOST. */
  dockerHost: string;
  /** `padlock-test-busybox:1`, imported once per daemon. */
  image: string;
  /** A dockerode client for this daemon. */
  docker: Docker;
  /** How long the last (re)start took until `/_ping` answered, in ms. */
  lastStartMs: number;
  runContainer(opts: RunContainerOptions): Promise<TestContainer>;
  /** SIGTERM, wait for exit, start again with the same flags; containers keep running with live-restore, else stop (and those with a restart policy come back). */
  restart(): Promise<void>;
  /** Removes all containers, stops the daemon (TERM, then KILL), cleans up mounts and the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** dockerd's output so far, for failure messages. */
  logs(): string;
}

const IMAGE_REPO = 'padlock-test-busybox';
const IMAGE_TAG = '1';
const READY_MS = 20_000;
const STOP_GRACE_MS = 10_000;
const LIFETIME_S = 1800;

/**
 * The container's command: `busybox httpd` under a shell that stops it gracefully on SIGTERM.
 *
 * busybox httpd forks a child per connection and has no graceful stop: SIGTERM ends the listening
 * parent at once, the container's init then exits, and the kernel kills every child still answering
 * (it had written the response head and not yet the body: a truncated answer no proxy can save).
 * Measured: 3 of 60 redeploys under CPU load lost 1 to 4 requests that way, each a
 * content-length mismatch at padlock. A real app drains on SIGTERM, so this shell does: it ends the
 * listener (new connections are refused), waits for the children still answering (within the 1 s
 * stop timeout), then exits.
 */
function gracefulHttpd(name: string, port: number): string {
  return [
    `mkdir -p /www && echo ${name} > /www/index.html`,
    `/bin/httpd -f -p 127.0.0.1:${port} -h /www & pid=$!`,
    // pidof also lists the children, which share the parent's name; they end within milliseconds.
    `trap 'kill $pid; while pidof httpd >/dev/null; do usleep 10000; done; exit 0' TERM`,
    'wait $pid',
  ].join('\n');
}

/** The static busybox from `busybox-static`; a dynamic one cannot run in an image with no libc. */
function staticBusybox(): string {
  const p = '/bin/busybox';
  const missing = 'test harness: a static /bin/busybox is needed to build the test image; install the Debian package: apt-get install busybox-static';
  if (!existsSync(p)) throw new Error(missing);
  const fd = openSync(p, 'r');
  const head = Buffer.alloc(4096);
  readSync(fd, head, 0, head.length, 0);
  closeSync(fd);
  // A dynamic ELF names its loader (PT_INTERP) near the start of the file.
  if (head.includes('/lib64/ld-linux') || head.includes('/lib/ld-linux')) throw new Error(missing + ' (the installed busybox is dynamically linked)');
  return p;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', method: 'GET', timeout: 1_000, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

// --- leak guards: a failing test must not leave a daemon behind ---
const liveDaemons = new Set<{ kill(): void }>();
let hooksInstalled = false;
function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const d of liveDaemons) d.kill();
  });
}

/** PIDs whose command line mentions `marker` (our private temp dir): this daemon's containerd and shims. */
function pidsMentioning(marker: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.includes(marker)) out.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Mount points under `dir` (dockerd bind-mounts its data root and netns files), deepest first. */
function mountsUnder(dir: string): string[] {
  const text = readFileSync('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === dir || m.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
}

/**
 * Starts a private dockerd and imports the busybox image. Resolves once the
 * daemon answers `/_ping` and the image exists (about 0.3 s here). Throws with
 * the daemon's output if it is not ready within 20 s, and naming the Debian
 * package if a program is missing.
 */
export async function startDockerd(opts: { liveRestore?: boolean } = {}): Promise<Dockerd> {
  const dockerdBin = requireProgram('dockerd', 'docker.io', 'the Docker daemon');
  requireProgram('containerd', 'docker.io (it depends on containerd)', "the Docker daemon's runtime");
  requireProgram('tar', 'tar', 'packing the test image');
  const busybox = staticBusybox();
  installHooks();

  // Short: a unix socket path must stay under about 107 bytes.
  const dir = await mkdtemp(existsSync('/tmp') ? '/tmp/pdd-' : join(process.env.TMPDIR ?? '/tmp', 'pdd-'));
  const socketPath = join(dir, 'd.sock');
  const args = [
    '--host', `unix://${socketPath}`,
    '--data-root', join(dir, 'data'),
    '--exec-root', join(dir, 'x'),
    '--pidfile', join(dir, 'd.pid'),
    '--bridge=none', '--iptables=false', '--ip6tables=false',
    '--storage-driver=vfs',
    ...(opts.liveRestore === false ? [] : ['--live-restore']),
  ];
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = '';
  const timeoutBin = onPath('timeout');

  const killAll = (): void => {
    if (child?.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const pid of pidsMentioning(dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  };
  const guard = { kill: killAll };
  liveDaemons.add(guard);

  const launch = async (): Promise<number> => {
    const t0 = performance.now();
    // coreutils `timeout` caps the daemon's lifetime even if this process is SIGKILLed.
    const [cmd, argv] = timeoutBin ? [timeoutBin, ['--kill-after=5', String(LIFETIME_S), dockerdBin, ...args]] : [dockerdBin, args];
    const c = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    child = c;
    const add = (d: Buffer): void => {
      output += d.toString('utf8');
      if (output.length > 1_000_000) output = output.slice(-500_000);
    };
    c.stdout?.on('data', add);
    c.stderr?.on('data', add);
    exited = new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.once('error', (e) => {
        output += `\n[spawn error: ${e.message}]\n`;
        resolve();
      });
    });
    c.unref();
    (c.stdout as unknown as { unref?: () => void } | null)?.unref?.();
    (c.stderr as unknown as { unref?: () => void } | null)?.unref?.();
    const deadline = Date.now() + READY_MS;
    while (Date.now() < deadline) {
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(`startDockerd: dockerd exited (${c.exitCode ?? c.signalCode}) before answering /_ping\n--- dockerd output ---\n${output.slice(-5000)}`);
      }
      if (await ping(socketPath)) return performance.now() - t0;
      await sleep(25);
    }
    throw new Error(`startDockerd: dockerd did not answer /_ping on ${socketPath} within ${READY_MS} ms\n--- dockerd output ---\n${output.slice(-5000)}`);
  };

  const terminate = async (): Promise<void> => {
    const c = child;
    if (!c || c.pid === undefined) return;
    if (c.exitCode === null && c.signalCode === null) {
      c.ref();
      try {
        process.kill(-c.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      let timer: NodeJS.Timeout | undefined;
      const graceful = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), STOP_GRACE_MS)))]);
      clearTimeout(timer);
      if (!graceful) {
        try {
          process.kill(-c.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
        await exited;
      }
    }
  };

  const docker = new Docker({ socketPath });
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      try {
        if (child && child.exitCode === null && (await ping(socketPath))) {
          const all = await docker.listContainers({ all: true, abortSignal: AbortSignal.timeout(5_000) });
          await Promise.all(all.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => {})));
        }
      } catch {
        /* the daemon is unwell; the kills below still clean up */
      }
      await terminate();
      // Shims and an orphaned containerd outlive dockerd when something went wrong; they name our dir.
      for (const pid of pidsMentioning(dir)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      for (const m of mountsUnder(dir)) await execFileP('umount', ['-l', m]).catch(() => {});
      await rm(dir, { recursive: true, force: true, maxRetries: 3 });
      liveDaemons.delete(guard);
    })());

  let lastStartMs: number;
  try {
    lastStartMs = await launch();
    // The image: busybox plus the links the tests call, imported from a tar stream (no pull, no registry).
    const root = join(dir, 'img');
    await mkdir(join(root, 'bin'), { recursive: true });
    await mkdir(join(root, 'tmp'), { recursive: true });
    await copyFile(busybox, join(root, 'bin', 'busybox'));
    for (const applet of ['sh', 'httpd', 'wget', 'sleep', 'mkdir', 'echo', 'kill', 'pidof', 'usleep']) await symlink('busybox', join(root, 'bin', applet));
    const tar = spawn('tar', ['-C', root, '-c', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const progress = await docker.importImage(tar.stdout as unknown as string, { repo: IMAGE_REPO, tag: IMAGE_TAG } as object);
    await new Promise<void>((resolve, reject) => {
      (progress as NodeJS.ReadableStream).on('data', () => {});
      (progress as NodeJS.ReadableStream).on('end', resolve);
      (progress as NodeJS.ReadableStream).on('error', reject);
    });
    await docker.getImage(`${IMAGE_REPO}:${IMAGE_TAG}`).inspect();
    rmSync(root, { recursive: true, force: true });
  } catch (e) {
    await stop();
    throw e;
  }

  const d: Dockerd = {
    socketPath,
    dockerHost: `unix://${socketPath}`,
    image: `${IMAGE_REPO}:${IMAGE_TAG}`,
    docker,
    lastStartMs,
    logs: () => output,
    stop,
    async restart() {
      await terminate();
      d.lastStartMs = await launch();
    },
    async runContainer(opts) {
      const env = Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`);
      const cmd =
        opts.port !== undefined
          ? ['/bin/sh', '-c', gracefulHttpd(opts.name, opts.port)]
          : ['/bin/busybox', 'sleep', '3600'];
      const hc = opts.healthcheck;
      const container = await docker.createContainer({
        name: opts.name,
        Image: d.image,
        Cmd: cmd,
        Labels: opts.labels ?? {},
        Env: env,
        ...(opts.port !== undefined && opts.expose !== false ? { ExposedPorts: { [`${opts.port}/tcp`]: {} } } : {}),
        ...(hc
          ? { Healthcheck: { Test: ['CMD', ...hc.test], Interval: (hc.intervalMs ?? 300) * 1e6, Timeout: 2e9, Retries: hc.retries ?? 1 } }
          : {}),
        StopTimeout: 1,
        HostConfig: { NetworkMode: 'host', Init: true, ...(opts.restartPolicy ? { RestartPolicy: { Name: opts.restartPolicy } } : {}) },
      });
      await container.start();
      return {
        id: container.id,
        name: opts.name,
        stop: async () => {
          await container.stop({ t: 1 }).catch((e: { statusCode?: number }) => {
            if (e.statusCode !== 304) throw e; // 304: already stopped
          });
        },
        remove: async () => {
          await container.remove({ force: true });
        },
      };
    },
  };
  return d;
}
