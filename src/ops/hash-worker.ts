import { Worker } from "node:worker_threads";
import { OcibootError } from "../errors.ts";

/**
 * The worker's program, given as source so that it runs the same from the sources, the bundled
 * single executable and Deno (no separate file to find). Messages are handled in order, so each
 * acknowledgement answers the oldest pending update.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const hash = createHash(workerData.algorithm);
const shared = new Map();
parentPort.on("message", (message) => {
  if (message.forget !== undefined) shared.delete(message.forget);
  if (message.memory !== undefined) shared.set(message.id, message.memory);
  if (message.chunk !== undefined) {
    hash.update(message.chunk);
    parentPort.postMessage({ hashed: true });
  } else if (message.id !== undefined) {
    hash.update(new Uint8Array(shared.get(message.id), message.offset, message.length));
    parentPort.postMessage({ hashed: true });
  } else {
    parentPort.postMessage({ digest: hash.digest("hex") });
  }
});
`;

/** A chunk to hash (copied, or named within shared memory), or, empty, a request for the digest. */
interface HashMessage {
  chunk?: Uint8Array;
  id?: number;
  memory?: SharedArrayBuffer;
  offset?: number;
  length?: number;
  /** A buffer id the worker may drop (sent in order, so after every update that used it). */
  forget?: number;
}

/** Shared buffers the worker keeps by id; a pool (bulk-get) uses a dozen or so. */
const MAX_KNOWN_BUFFERS = 32;

interface Pending {
  resolve(value: string | undefined): void;
  reject(error: unknown): void;
}

/**
 * An incremental hash computed on a worker thread, so that hashing a large blob overlaps with
 * receiving and writing it instead of taking turns with them on the main thread. Chunks backed by
 * a SharedArrayBuffer are read where they lie; others are copied into the message.
 *
 * Each SharedArrayBuffer is sent once and then named by a number: passing one in a message costs
 * ~90 µs (a GiB in 1 MiB chunks spent ~0.1 s on each side in it), passing three numbers almost
 * nothing, and pooled chunks come from a few buffers used over and over.
 */
export class HashWorker {
  readonly #worker: Worker;
  readonly #pending: Pending[] = [];
  readonly #sharedIds = new WeakMap<SharedArrayBuffer, number>();
  #failure: unknown;
  #nextId = 0;
  readonly #known: SharedArrayBuffer[] = [];

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.on("message", (message: { hashed?: true; digest?: string }) => this.#pending.shift()?.resolve(message.digest));
    worker.on("error", (error) => this.#fail(error));
    worker.on("exit", (code) => this.#fail(new Error(`the hashing worker exited (${code})`)));
  }

  /** Starts a worker hashing with `algorithm` (a node:crypto name); undefined where workers cannot start. */
  static start(algorithm: string): HashWorker | undefined {
    try {
      // The worker only hashes: a small heap keeps its memory to a few MB.
      const resourceLimits = { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 8 };
      return new HashWorker(new Worker(WORKER_SOURCE, { eval: true, workerData: { algorithm }, resourceLimits }));
    } catch {
      return undefined;
    }
  }

  /** Feeds a chunk; resolves once the worker has hashed it (a shared chunk's memory may then be reused). */
  update(chunk: Uint8Array): Promise<void> {
    const memory = chunk.buffer;
    if (!(memory instanceof SharedArrayBuffer)) return this.#request({ chunk }).then(() => undefined);
    let id = this.#sharedIds.get(memory);
    const known = id !== undefined;
    if (id === undefined) {
      id = this.#nextId++;
      this.#sharedIds.set(memory, id);
      this.#known.push(memory);
    }
    const message: HashMessage = { id, offset: chunk.byteOffset, length: chunk.byteLength };
    if (!known) message.memory = memory;
    if (this.#known.length > MAX_KNOWN_BUFFERS) {
      // A source that never reuses its buffers must not make the worker keep them all.
      const oldest = this.#known.shift() as SharedArrayBuffer;
      message.forget = this.#sharedIds.get(oldest) as number;
      this.#sharedIds.delete(oldest);
    }
    return this.#request(message).then(() => undefined);
  }

  /** The hex digest of everything fed, once every update is hashed. */
  async digest(): Promise<string> {
    const digest = await this.#request({});
    if (digest === undefined) throw new OcibootError("LOCAL_IO", "Cannot hash content: the hashing worker gave no digest");
    return digest;
  }

  /** Stops the worker; pending requests fail. */
  async terminate(): Promise<void> {
    this.#fail(new Error("the hashing worker was stopped"));
    await this.#worker.terminate();
  }

  #request(message: HashMessage): Promise<string | undefined> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise<string | undefined>((resolve, reject) => {
      this.#pending.push({ resolve, reject });
      this.#worker.postMessage(message);
    });
  }

  #fail(cause: unknown): void {
    this.#failure ??= new OcibootError("LOCAL_IO", `Cannot hash content: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    for (const pending of this.#pending.splice(0)) pending.reject(this.#failure);
  }
}
