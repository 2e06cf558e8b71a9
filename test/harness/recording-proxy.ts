import { readFile } from "node:fs/promises";
import { createServer, request as httpRequest } from "node:http";
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { request as httpsRequest } from "node:https";
import type { AddressInfo, Socket } from "node:net";

/**
 * A plain-HTTP relay in front of a real registry. The registry still answers every request; the
 * relay records the request headers distribution does not log (Range, Authorization, Accept) and
 * can inject the failures a client must survive — a connection cut mid-body, a 429 or 503 — on the
 * requests a test picks. Registry-generated upload URLs point back at the relay, because the
 * registry builds them from the Host header the relay forwards.
 */

export interface RelayedRequest {
  method: string;
  /** Path and query. */
  path: string;
  /** Request headers as the client sent them (names lowercase). */
  headers: IncomingHttpHeaders;
  /** Status sent to the client (0 when the connection was cut before the head). */
  status: number;
  /** The fault applied, if any. */
  fault: Fault["kind"] | undefined;
  /** The client's port: equal ports mean one (keep-alive) connection. */
  remotePort: number;
}

export type Fault =
  /** Relay the upstream head and the first `afterBytes` body bytes, then destroy the connection. */
  | { kind: "cut"; afterBytes: number }
  /** Relay the upstream head and the first `afterBytes` body bytes, then send nothing more, keeping the connection open. */
  | { kind: "stall"; afterBytes: number }
  /** Answer without asking upstream. */
  | { kind: "respond"; status: number; headers?: Record<string, string>; body?: string };

export interface FaultRule {
  method?: string;
  /** Matched against path and query. */
  path: RegExp;
  fault: Fault;
  /** How many matching requests get the fault; default 1. */
  times?: number;
}

export interface RecordingProxy {
  /** `127.0.0.1:PORT`, for references. */
  host: string;
  url: string;
  requests: RelayedRequest[];
  /** TCP connections the relay accepted from clients so far. */
  readonly connections: number;
  /** Adds a fault for upcoming requests. */
  inject(rule: FaultRule): void;
  stop(): Promise<void>;
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te", "trailer"]);

/** Starts a relay to `target` (e.g. a `RunningRegistry`); `caFile` is needed for an HTTPS target. */
export async function startRecordingProxy(target: { url: string; caFile?: string }): Promise<RecordingProxy> {
  const upstream = new URL(target.url);
  const ca = target.caFile === undefined ? undefined : await readFile(target.caFile);
  const requests: RelayedRequest[] = [];
  const rules: Array<FaultRule & { remaining: number }> = [];
  const sockets = new Set<Socket>();

  const takeFault = (method: string, path: string): Fault | undefined => {
    const rule = rules.find((candidate) => candidate.remaining > 0 && (candidate.method ?? method) === method && candidate.path.test(path));
    if (rule === undefined) return undefined;
    rule.remaining -= 1;
    return rule.fault;
  };

  const handle = (clientRequest: IncomingMessage, clientResponse: ServerResponse): void => {
    const method = clientRequest.method ?? "GET";
    const path = clientRequest.url ?? "/";
    const fault = takeFault(method, path);
    const record: RelayedRequest = { method, path, headers: { ...clientRequest.headers }, status: 0, fault: fault?.kind, remotePort: clientRequest.socket.remotePort ?? 0 };
    requests.push(record);

    if (fault?.kind === "respond") {
      clientRequest.resume();
      record.status = fault.status;
      clientResponse.writeHead(fault.status, fault.headers ?? {});
      clientResponse.end(fault.body ?? "");
      return;
    }

    const headers: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(clientRequest.headers)) {
      if (!HOP_BY_HOP.has(name) && value !== undefined) headers[name] = value;
    }
    // The registry builds upload and redirect URLs from the scheme it sees; the client speaks plain HTTP.
    headers["x-forwarded-proto"] = "http";
    const options = { method, headers, agent: false as const };
    const targetUrl = new URL(path, upstream);
    const onUpstreamResponse = (upstreamResponse: IncomingMessage): void => {
      const responseHeaders: OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(upstreamResponse.headers)) {
        if (!HOP_BY_HOP.has(name) && value !== undefined) responseHeaders[name] = value;
      }
      const status = upstreamResponse.statusCode ?? 502;
      record.status = status;
      clientResponse.writeHead(status, responseHeaders);
      if (fault?.kind !== "cut" && fault?.kind !== "stall") {
        upstreamResponse.pipe(clientResponse);
        return;
      }
      const { kind, afterBytes } = fault;
      let sent = 0;
      upstreamResponse.on("data", (chunk: Buffer) => {
        if (sent >= afterBytes) return;
        const piece = chunk.subarray(0, afterBytes - sent);
        sent += piece.length;
        clientResponse.write(piece);
        if (sent < afterBytes) return;
        upstreamResponse.destroy();
        // A failing network: flush what was written, then drop the connection. A stall keeps it open
        // until the client gives up or the relay stops.
        if (kind === "cut") clientResponse.socket?.end(() => clientResponse.socket?.destroy());
      });
      // A body shorter than the fault point is relayed whole.
      upstreamResponse.on("end", () => clientResponse.end());
    };
    const upstreamRequest =
      upstream.protocol === "https:"
        ? httpsRequest(targetUrl, { ...options, ...(ca === undefined ? {} : { ca }) }, onUpstreamResponse)
        : httpRequest(targetUrl, options, onUpstreamResponse);
    upstreamRequest.on("error", (error) => {
      if (!clientResponse.headersSent) {
        record.status = 502;
        clientResponse.writeHead(502, { "content-type": "text/plain" });
      }
      clientResponse.end(`relay: ${error.message}`);
    });
    clientRequest.pipe(upstreamRequest);
  };

  const server = createServer(handle);
  let connections = 0;
  server.on("connection", (socket) => {
    connections++;
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = `127.0.0.1:${port}`;

  return {
    host,
    url: `http://${host}`,
    requests,
    get connections() {
      return connections;
    },
    inject(rule) {
      rules.push({ ...rule, remaining: rule.times ?? 1 });
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
