import { createServer, connect, type AddressInfo, type Socket } from "node:net";

/**
 * A TCP relay on loopback in front of a real registry: bytes pass unchanged in both directions,
 * optionally slowed to `chunkBytes` per `delayMs` so that a transfer is still running when a test
 * interrupts it, and optionally on a port chosen in advance (`freePort`) so that a client can be
 * started before anything listens there.
 */
export interface SlowRelay {
  /** `127.0.0.1:PORT`, for references. */
  host: string;
  port: number;
  /** Bytes relayed so far from the target to clients (downloads) and from clients to the target (uploads). */
  bytesToClients(): number;
  bytesToTarget(): number;
  /** Closes the port and cuts every connection, as a lost network would. */
  stop(): Promise<void>;
}

export interface SlowRelayOptions {
  /** Listen on this port (default: any free one). */
  port?: number;
  /** Pause after each chunk, in both directions (default 0: full speed). */
  delayMs?: number;
  /** Bytes relayed between pauses (default 64 KiB). */
  chunkBytes?: number;
}

/** Starts a relay to `target` (`host:port`). */
export async function startSlowRelay(target: string, options: SlowRelayOptions = {}): Promise<SlowRelay> {
  const [targetHost, targetPort] = splitHost(target);
  const delayMs = options.delayMs ?? 0;
  const chunkBytes = options.chunkBytes ?? 64 * 1024;
  const sockets = new Set<Socket>();
  const counted = { toClients: 0, toTarget: 0 };
  const server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
    }
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", close);
    upstream.on("error", close);
    pump(client, upstream, delayMs, chunkBytes, (bytes) => void (counted.toTarget += bytes));
    pump(upstream, client, delayMs, chunkBytes, (bytes) => void (counted.toClients += bytes));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    port,
    bytesToClients: () => counted.toClients,
    bytesToTarget: () => counted.toTarget,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A loopback port that nothing listens on at the moment of the call. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function pump(from: Socket, to: Socket, delayMs: number, chunkBytes: number, count: (bytes: number) => void): void {
  from.on("end", () => to.end());
  if (delayMs === 0) {
    from.on("data", (chunk: Buffer) => count(chunk.length));
    from.pipe(to, { end: false });
    return;
  }
  from.on("data", (chunk: Buffer) => {
    from.pause();
    let offset = 0;
    const next = () => {
      if (to.destroyed) return;
      if (offset >= chunk.length) {
        from.resume();
        return;
      }
      const piece = chunk.subarray(offset, offset + chunkBytes);
      to.write(piece);
      count(piece.length);
      offset += chunkBytes;
      setTimeout(next, delayMs);
    };
    next();
  });
}

function splitHost(host: string): [string, number] {
  const colon = host.lastIndexOf(":");
  return [host.slice(0, colon), Number(host.slice(colon + 1))];
}
