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
parentPort.on("message", (message) => {
  if (message.chunk !== undefined) {
    hash.update(message.chunk);
    parentPort.postMessage({ hashed: true });
  } else {
    parentPort.postMessage({ digest: hash.digest("hex") });
  }
});
`;

interface Pending {
  resolve(value: string | undefined): void;
  reject(error: unknown): void;
}

/**
 * An incremental hash computed on a worker thread, so that hashing a large blob overlaps with
 * receiving and writing it instead of taking turns with them on the main thread. Chunks backed by
 * a SharedArrayBuffer are read where they lie; others are copied into the message.
 */
export class HashWorker {
  readonly #worker: Worker;
  readonly #pending: Pending[] = [];
  #failure: unknown;

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
    return this.#request({ chunk }).then(() => undefined);
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

  #request(message: { chunk?: Uint8Array }): Promise<string | undefined> {
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
