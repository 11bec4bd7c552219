/**
 * A layer-4 balancer in front of the replicas' HTTP ports, as a fleet behind
 * a TCP load balancer has: Pebble's mock DNS sends every name to this
 * balancer's address, and each connection goes to the next replica in turn
 * (round robin). A replica that refuses the connection (not listening yet) is
 * skipped, as a health-checked balancer would; when none accepts, the
 * connection waits and tries again, for at most `waitMs`.
 *
 * So the CA's validation of an order made by one replica is usually answered
 * by another, and every replica answers some: the counts per replica say how
 * many. Loopback only: it listens on one 127.0.0.x address and connects to
 * the replicas' 127.0.0.x addresses.
 */
import net from 'node:net';

export interface Balancer {
  /** Connections handed to each replica. */
  counts(): Record<string, number>;
  /** Connections dropped because no replica accepted within `waitMs`. */
  dropped(): number;
  close(): Promise<void>;
}

const RETRY_MS = 100;

/** Listens on `host:port` and forwards each connection to `targets` (same port) in turn. */
export async function startBalancer(host: string, port: number, targets: readonly string[], waitMs = 10_000): Promise<Balancer> {
  const counts: Record<string, number> = Object.fromEntries(targets.map((t) => [t, 0]));
  let dropped = 0;
  let next = 0;
  const sockets = new Set<net.Socket>();

  const connect = (target: string): Promise<net.Socket | undefined> =>
    new Promise((resolve) => {
      const s = net.connect({ host: target, port });
      s.once('connect', () => resolve(s));
      s.once('error', () => {
        s.destroy();
        resolve(undefined);
      });
    });

  /** The next replica that accepts, starting with the next in turn. */
  const pick = async (): Promise<{ target: string; socket: net.Socket } | undefined> => {
    const deadline = Date.now() + waitMs;
    const start = next++;
    for (;;) {
      for (let i = 0; i < targets.length; i++) {
        const target = targets[(start + i) % targets.length]!;
        const socket = await connect(target);
        if (socket) return { target, socket };
      }
      if (Date.now() > deadline) return undefined;
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  };

  const server = net.createServer((client) => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    client.pause();
    void pick().then((up) => {
      if (!up) {
        dropped++;
        client.destroy();
        return;
      }
      counts[up.target]! += 1;
      sockets.add(up.socket);
      up.socket.once('close', () => sockets.delete(up.socket));
      up.socket.on('error', () => client.destroy());
      client.on('close', () => up.socket.destroy());
      up.socket.on('close', () => client.destroy());
      client.pipe(up.socket);
      up.socket.pipe(client);
      client.resume();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    counts: () => ({ ...counts }),
    dropped: () => dropped,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
