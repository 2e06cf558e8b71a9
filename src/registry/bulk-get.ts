import { isIP, connect as netConnect, type OnReadOpts, type Socket } from "node:net";
import { type ConnectionOptions, connect as tlsConnect } from "node:tls";
import { AlignedBlockPool, DIRECT_IO_ALIGNMENT } from "../aligned-blocks.ts";

/** Large body blocks: the file is written from them in few large writes. */
const BLOCK_BYTES = 1024 * 1024;
/** Blocks received but not yet taken by the consumer, before the socket is paused. */
const MAX_QUEUED_BLOCKS = 2;
/** Blocks cut from one aligned memory at a time: the queue, what a consumer holds, and one filling. */
const SLAB_BLOCKS = 8;
const MAX_HEADER_BYTES = 64 * 1024;

export interface BulkGetRequest {
  url: URL;
  /** Request headers besides Host and Connection; values must not contain CR or LF. */
  headers: Readonly<Record<string, string>>;
  tls: { ca?: string[]; rejectUnauthorized: boolean };
  signal?: AbortSignal;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
}

export interface BulkGetResponse {
  status: number;
  /** Lower-case names; repeated headers as arrays. */
  headers: Record<string, string | string[]>;
  body: BulkBody;
}

/** A response body read into large blocks. Chunks stay valid until given back with `release`. */
export interface BulkBody extends AsyncIterable<Buffer> {
  /**
   * Set when every chunk but the last starts on a boundary of this many bytes in memory and is a
   * multiple of it long (whole page-aligned blocks), so the consumer may write it with direct I/O.
   */
  readonly alignment: number | undefined;
  /** Discards the rest of the body (closes the connection: it is not reused). */
  dump(): Promise<void>;
  destroy(error?: Error): void;
  /** Hands a chunk's memory back for reuse; the chunk must not be read afterwards. */
  release(chunk: Uint8Array): void;
}

/**
 * One HTTP/1.1 GET on a connection of its own, the body read with `onread` straight into large
 * pooled, page-aligned blocks, each handed on whole: no allocation per socket read, about a
 * thousand chunks per GiB instead of ~16 000 (undici), and chunks a file can take by direct I/O
 * without another copy. Measured here, receiving 1 GiB from a local registry took ~0.35 s of CPU this
 * way against ~1.1 s through undici, which copies each socket read into its WebAssembly parser.
 *
 * Resolves to `undefined`, having closed the connection, when the response is not framed by
 * `Content-Length` (chunked, or until close): the caller then sends the request another way.
 */
export function bulkGet(request: BulkGetRequest): Promise<BulkGetResponse | undefined> {
  return new BulkExchange(request).start();
}

interface Waiter {
  resolve(result: IteratorResult<Buffer>): void;
  reject(error: unknown): void;
}

class BulkExchange {
  readonly #request: BulkGetRequest;
  #socket: Socket | undefined;
  readonly #pool = new AlignedBlockPool(BLOCK_BYTES, SLAB_BLOCKS);
  #block: Uint8Array = this.#pool.take();
  /** Bytes received into `#block`; once the header is parsed, every one of them is body. */
  #fill = 0;
  #bodyRemaining = -1;
  #headerParsed = false;
  readonly #queue: Buffer[] = [];
  #ended = false;
  #failure: unknown;
  #waiter: Waiter | undefined;
  #paused = false;
  #onHeaders: ((response: BulkGetResponse | undefined) => void) | undefined;
  #onHeadersFailed: ((error: unknown) => void) | undefined;
  #headersTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #abort = () => this.#fail(this.#request.signal?.reason ?? new Error("aborted"));

  constructor(request: BulkGetRequest) {
    this.#request = request;
  }

  start(): Promise<BulkGetResponse | undefined> {
    const { url, headers, signal } = this.#request;
    const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `host: ${url.host}`, "connection: close"];
    for (const [name, value] of Object.entries(headers)) {
      if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) return Promise.resolve(undefined);
      lines.push(`${name}: ${value}`);
    }
    const head = `${lines.join("\r\n")}\r\n\r\n`;
    return new Promise<BulkGetResponse | undefined>((resolve, reject) => {
      this.#onHeaders = resolve;
      this.#onHeadersFailed = reject;
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      signal?.addEventListener("abort", this.#abort, { once: true });
      this.#headersTimer = setTimeout(
        () => this.#fail(codedError("ETIMEDOUT", `no response headers within ${this.#request.headersTimeoutMs} ms`)),
        this.#request.headersTimeoutMs,
      );
      const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
      const onread: OnReadOpts = {
        buffer: () => this.#readTarget(),
        callback: (bytes) => {
          this.#received(bytes);
          return true;
        },
      };
      const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
      // TLS sockets honour `onread` too (the type definitions leave it out).
      const tlsOptions: ConnectionOptions & { onread: OnReadOpts } = { host, port, ...this.#request.tls, onread };
      if (isIP(host) === 0) tlsOptions.servername = host;
      const socket = url.protocol === "https:" ? tlsConnect(tlsOptions) : netConnect({ host, port, onread });
      this.#socket = socket;
      socket.setNoDelay(true);
      socket.once(url.protocol === "https:" ? "secureConnect" : "connect", () => socket.write(head));
      socket.on("error", (error) => this.#fail(error));
      socket.on("end", () => this.#closedEarly());
      socket.on("close", () => this.#closedEarly());
      socket.setTimeout(this.#request.bodyTimeoutMs, () => {
        // Idle because we paused it is not the server's fault.
        if (!this.#paused) this.#fail(codedError("ETIMEDOUT", `no data for ${this.#request.bodyTimeoutMs} ms`));
      });
    });
  }

  #readTarget(): Uint8Array {
    return this.#block.subarray(this.#fill);
  }

  #received(bytes: number): void {
    this.#fill += bytes;
    if (!this.#headerParsed) {
      if (!this.#parseHeader()) return;
      if (this.#ended) return;
    }
    if (this.#fill >= this.#bodyRemaining) {
      this.#handOn(this.#bodyRemaining);
      this.#finish();
    } else if (this.#fill === this.#block.byteLength) {
      this.#handOn(this.#fill);
    }
  }

  /** The body bytes that came with the header start a fresh block, so every block is the body's own. */
  #moveBodyToBlockStart(bodyStart: number): void {
    const first = this.#pool.take();
    const body = this.#block.subarray(bodyStart, this.#fill);
    first.set(body);
    this.#pool.give(this.#block);
    this.#block = first;
    this.#fill = body.byteLength;
  }

  /** Parses status line and headers once they are complete; false while more is needed. */
  #parseHeader(): boolean {
    const text = Buffer.from(this.#block.buffer, this.#block.byteOffset, Math.min(this.#fill, MAX_HEADER_BYTES)).toString("latin1");
    const end = text.indexOf("\r\n\r\n");
    if (end < 0) {
      if (this.#fill >= MAX_HEADER_BYTES) this.#fail(codedError("EPROTO", `response header larger than ${MAX_HEADER_BYTES} bytes`));
      return false;
    }
    clearTimeout(this.#headersTimer);
    const [statusLine = "", ...fields] = text.slice(0, end).split("\r\n");
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (!status) {
      this.#fail(codedError("EPROTO", `not an HTTP/1.1 response: ${JSON.stringify(statusLine.slice(0, 80))}`));
      return false;
    }
    const headers: Record<string, string | string[]> = {};
    for (const field of fields) {
      const colon = field.indexOf(":");
      if (colon <= 0) continue;
      const name = field.slice(0, colon).trim().toLowerCase();
      const value = field.slice(colon + 1).trim();
      const previous = headers[name];
      headers[name] = previous === undefined ? value : Array.isArray(previous) ? [...previous, value] : [previous, value];
    }
    const statusCode = Number(status[1]);
    const length = headers["content-length"];
    const framed = typeof length === "string" && /^\d+$/.test(length) && headers["transfer-encoding"] === undefined;
    const bodiless = statusCode === 204 || statusCode === 304;
    this.#headerParsed = true;
    if (statusCode < 200 || (!framed && !bodiless)) {
      // 1xx, chunked or close-delimited: not worth a parser of our own; the caller asks again.
      this.#ended = true;
      this.#settleHeaders(undefined);
      this.#socket?.destroy();
      return false;
    }
    this.#moveBodyToBlockStart(end + 4);
    this.#bodyRemaining = bodiless ? 0 : Number(length);
    const bodyStream: BulkBody = {
      alignment: this.#pool.aligned ? DIRECT_IO_ALIGNMENT : undefined,
      [Symbol.asyncIterator]: () => ({
        next: () => this.#next(),
        return: async () => {
          this.#cancel();
          return { done: true, value: undefined };
        },
      }),
      dump: async () => this.#cancel(),
      destroy: (error?: Error) => (error ? this.#fail(error) : this.#cancel()),
      release: (chunk) => this.#release(chunk),
    };
    this.#settleHeaders({ status: statusCode, headers, body: bodyStream });
    return true;
  }

  /** Queues the first `bodyBytes` body bytes of the current block and starts a new block. */
  #handOn(bodyBytes: number): void {
    const block = this.#block;
    if (bodyBytes > 0) {
      this.#queue.push(Buffer.from(block.buffer, block.byteOffset, bodyBytes));
      this.#bodyRemaining -= bodyBytes;
    }
    // Only the last block can hold bytes past the body (ignored: the connection closes).
    this.#block = this.#pool.take();
    this.#fill = 0;
    if (this.#queue.length >= MAX_QUEUED_BLOCKS && !this.#paused) {
      this.#paused = true;
      this.#socket?.pause();
    }
    this.#wake();
  }

  #next(): Promise<IteratorResult<Buffer>> {
    const chunk = this.#queue.shift();
    if (chunk !== undefined) {
      if (this.#paused && this.#queue.length < MAX_QUEUED_BLOCKS / 2 && !this.#ended) {
        this.#paused = false;
        this.#socket?.resume();
      }
      return Promise.resolve({ done: false, value: chunk });
    }
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#ended) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  #wake(): void {
    const waiter = this.#waiter;
    if (waiter === undefined) return;
    this.#waiter = undefined;
    this.#next().then(waiter.resolve, waiter.reject);
  }

  #release(chunk: Uint8Array): void {
    // Every block is kept: their number is bounded by what the consumer holds at most, and a
    // dropped one would linger until the garbage collector notices it.
    this.#pool.give(chunk);
  }

  #finish(): void {
    this.#ended = true;
    this.#cleanUp();
    this.#socket?.destroy();
    this.#wake();
  }

  #cancel(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#queue.length = 0;
    this.#cleanUp();
    this.#socket?.destroy();
    this.#wake();
  }

  #closedEarly(): void {
    if (this.#ended) return;
    const what = this.#headerParsed ? `the connection closed with ${this.#bodyRemaining} body bytes missing` : "the connection closed before a response";
    this.#fail(codedError("ECONNRESET", what));
  }

  #fail(error: unknown): void {
    if (this.#ended) return;
    // What arrived before the failure is handed on first: a download keeps it and resumes after it.
    const partial = this.#headerParsed ? Math.min(this.#fill, this.#bodyRemaining) : 0;
    if (partial > 0) this.#handOn(partial);
    this.#ended = true;
    this.#failure = error;
    this.#cleanUp();
    this.#socket?.destroy();
    this.#onHeadersFailed?.(error);
    this.#onHeaders = undefined;
    this.#onHeadersFailed = undefined;
    this.#wake();
  }

  #settleHeaders(response: BulkGetResponse | undefined): void {
    this.#onHeaders?.(response);
    this.#onHeaders = undefined;
    this.#onHeadersFailed = undefined;
  }

  #cleanUp(): void {
    clearTimeout(this.#headersTimer);
    this.#request.signal?.removeEventListener("abort", this.#abort);
  }
}

function codedError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}
