import { readFile } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { TLSSocket } from "node:tls";

/**
 * A hand-written misbehaving registry for fault tests: each request goes to a handler the test
 * writes (redirect elsewhere, fail with 503, cut a body short, flood an error body …), and every
 * request is recorded with its headers so tests can assert what the client sent where.
 *
 * It also acts as an HTTP proxy: `CONNECT host:port` tunnels are served by the same handler,
 * so a client configured with `HTTP_PROXY` can "reach" any host name (such as
 * `registry.example.com.evil.net`) without DNS, and the handler sees the requested `Host`.
 */

export interface RecordedRequest {
  method: string;
  /** Path and query. */
  url: string;
  /** The Host header: which name the client meant. */
  host: string;
  headers: IncomingHttpHeaders;
  /** Request body bytes (read fully before the handler runs). */
  body: Buffer;
  /** True when the request arrived through a CONNECT tunnel. */
  tunnelled: boolean;
  /** The client's port: equal ports mean a reused (keep-alive) connection. */
  remotePort: number;
}

export type FaultHandler = (request: RecordedRequest, response: ServerResponse, raw: IncomingMessage) => void | Promise<void>;

export interface FaultServer {
  /** `127.0.0.1:PORT` */
  host: string;
  /** `http://127.0.0.1:PORT` (or https) */
  url: string;
  port: number;
  /** Every request so far, in arrival order. */
  requests: RecordedRequest[];
  /** CONNECT targets seen (`host:port`), when used as a proxy. */
  tunnels: string[];
  /** Replaces the handler. */
  handle(handler: FaultHandler): void;
  stop(): Promise<void>;
}

export interface FaultServerOptions {
  /** Serve HTTPS with this certificate. */
  tls?: { certificateFile: string; keyFile: string };
  /** As a proxy, end TLS inside CONNECT tunnels with this certificate (for the tunnelled host name). */
  tunnelTls?: { certificateFile: string; keyFile: string };
  /** Listen here instead of 127.0.0.1 (a non-loopback address of this machine, say). */
  address?: string;
}

/** Starts a fault server on a free port, on loopback unless told otherwise. */
export async function startFaultServer(handler: FaultHandler, options: FaultServerOptions = {}): Promise<FaultServer> {
  let current = handler;
  const requests: RecordedRequest[] = [];
  const tunnels: string[] = [];
  const sockets = new Set<Socket>();

  const onRequest = (raw: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    raw.on("data", (chunk: Buffer) => chunks.push(chunk));
    raw.on("error", () => undefined);
    raw.on("end", () => {
      const recorded: RecordedRequest = {
        method: raw.method ?? "GET",
        url: raw.url ?? "/",
        host: raw.headers.host ?? "",
        headers: raw.headers,
        body: Buffer.concat(chunks),
        tunnelled: (raw.socket as Socket & { tunnelled?: boolean }).tunnelled === true,
        remotePort: raw.socket.remotePort ?? 0,
      };
      requests.push(recorded);
      Promise.resolve(current(recorded, response, raw)).catch((error: unknown) => {
        if (!response.headersSent) response.writeHead(500);
        response.end(String(error));
      });
    });
  };

  const server: Server =
    options.tls === undefined
      ? createHttpServer(onRequest)
      : createHttpsServer({ cert: await readFile(options.tls.certificateFile), key: await readFile(options.tls.keyFile) }, onRequest);
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  // Proxy mode: answer CONNECT, then serve the tunnelled plain-HTTP requests ourselves.
  server.on("connect", (request: IncomingMessage, socket: Socket, head: Buffer) => {
    tunnels.push(request.url ?? "");
    socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    if (head.length > 0) socket.unshift(head);
    const inner: Socket = tunnelCredentials === undefined ? socket : new TLSSocket(socket, { isServer: true, ...tunnelCredentials });
    (inner as Socket & { tunnelled?: boolean }).tunnelled = true;
    inner.on("error", () => undefined);
    createHttpServer(onRequest).emit("connection", inner);
  });
  const tunnelCredentials =
    options.tunnelTls === undefined
      ? undefined
      : { cert: await readFile(options.tunnelTls.certificateFile), key: await readFile(options.tunnelTls.keyFile) };
  const address = options.address ?? "127.0.0.1";
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  const port = (server.address() as AddressInfo).port;
  const scheme = options.tls === undefined ? "http" : "https";
  return {
    host: `${address}:${port}`,
    url: `${scheme}://${address}:${port}`,
    port,
    requests,
    tunnels,
    handle(next) {
      current = next;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Answers with a distribution-style JSON error. */
export function sendRegistryError(response: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ errors: [{ code, message }] });
  response.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), ...headers });
  response.end(body);
}
