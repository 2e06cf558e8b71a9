import { MultiBar, Presets, type SingleBar } from "cli-progress";
import type { FetchedFileStatus, FetchProgress } from "../ops/fetch.ts";
import type { CliContext } from "./context.ts";
import { formatBytes, formatDuration } from "./format.ts";

export interface ProgressOptions {
  quiet: boolean;
  /** Seconds between plain progress lines when stderr is not a terminal (CI logs); default $OCIBOOT_PROGRESS_INTERVAL, else 5. */
  lineInterval?: number;
  /**
   * Log lines for the plan and each finished file (default true). Off where the command logs
   * those itself (push, pull, copy, import), so logs get only the periodic `progress:` lines.
   */
  announce?: boolean;
  now?: () => number;
}

/** A progress display; `stop()` ends it on every way out (success, failure, Ctrl-C) and may be called twice. */
export interface ProgressDisplay extends FetchProgress {
  stop(): void;
}

/** Chooses the display: bars on a terminal, periodic lines in logs, nothing with --quiet. */
export function createFetchProgress(context: CliContext, options: ProgressOptions): ProgressDisplay | undefined {
  if (options.quiet) return undefined;
  if (context.stderr.isTTY) return new BarProgress(context);
  return new LineProgress(context, options.lineInterval ?? lineIntervalOf(context), options.now ?? Date.now, options.announce ?? true);
}

/** `$OCIBOOT_PROGRESS_INTERVAL` seconds (0: a line per chunk, for tests and slow links), else 5. */
function lineIntervalOf(context: CliContext): number {
  const text = context.env["OCIBOOT_PROGRESS_INTERVAL"];
  const seconds = text === undefined || text === "" ? Number.NaN : Number(text);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : 5;
}

/** Tracks per-file and total bytes; displays subclass it. */
abstract class ProgressTotals implements ProgressDisplay {
  protected readonly done = new Map<string, number>();
  protected readonly sizes = new Map<string, number>();
  protected total = 0;

  planned(files: ReadonlyArray<{ name: string; size: number }>): void {
    for (const file of files) {
      this.sizes.set(file.name, file.size);
      this.done.set(file.name, 0);
      this.total += file.size;
    }
  }

  advanced(name: string, done: number): void {
    this.done.set(name, done);
  }

  abstract finished(name: string, status: FetchedFileStatus): void;

  stop(): void {}

  protected doneTotal(): number {
    let sum = 0;
    for (const value of this.done.values()) sum += value;
    return sum;
  }
}

class BarProgress extends ProgressTotals {
  readonly #multibar: MultiBar;
  readonly #bars = new Map<string, SingleBar>();
  #totalBar: SingleBar | undefined;
  #finishedCount = 0;
  #stopped = false;

  constructor(context: CliContext) {
    super();
    this.#multibar = new MultiBar(
      {
        stream: context.stderr as unknown as NodeJS.WritableStream,
        format: " {name} |{bar}| {percentage}% {doneText}/{totalText} {speed} ETA {etaText}",
        hideCursor: true,
        clearOnComplete: false,
        fps: 8,
        barsize: 24,
        autopadding: true,
      },
      Presets.shades_classic,
    );
  }

  override planned(files: ReadonlyArray<{ name: string; size: number }>): void {
    super.planned(files);
    const width = Math.max(5, ...files.map((file) => file.name.length));
    for (const file of files) {
      this.#bars.set(file.name, this.#multibar.create(file.size, 0, this.#payload(file.name.padEnd(width), 0, file.size, 0)));
    }
    // A copy of an index plans once per manifest: one total bar, grown with each plan.
    if (this.#totalBar !== undefined) this.#totalBar.setTotal(this.total);
    else if (this.#bars.size > 1) this.#totalBar = this.#multibar.create(this.total, 0, this.#payload("total".padEnd(width), 0, this.total, 0));
  }

  override advanced(name: string, done: number): void {
    super.advanced(name, done);
    const bar = this.#bars.get(name);
    const size = this.sizes.get(name) ?? 0;
    bar?.update(done, this.#payload(undefined, done, size, bar.getTotal() > 0 ? speedOf(bar) : 0));
    const all = this.doneTotal();
    this.#totalBar?.update(all, this.#payload(undefined, all, this.total, this.#totalBar ? speedOf(this.#totalBar) : 0));
  }

  finished(): void {
    this.#finishedCount++;
    if (this.#finishedCount === this.#bars.size) this.stop();
  }

  /**
   * Stops the redraw timer (which would keep the process alive), shows the cursor again and ends
   * on a fresh line, so an error printed next is not drawn over.
   */
  override stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#bars.size > 0) this.#multibar.stop();
  }

  #payload(name: string | undefined, done: number, total: number, speed: number): Record<string, string> {
    const payload: Record<string, string> = {
      doneText: formatBytes(done),
      totalText: formatBytes(total),
      speed: speed > 0 ? `${formatBytes(speed)}/s` : "",
      etaText: speed > 0 ? formatDuration((total - done) / speed) : "?",
    };
    if (name !== undefined) payload["name"] = name;
    return payload;
  }
}

function speedOf(bar: SingleBar): number {
  // cli-progress keeps an ETA estimator; derive speed from elapsed time since the bar started.
  const state = bar as unknown as { startTime: number | null; value: number; startValue?: number };
  const elapsed = state.startTime ? (Date.now() - state.startTime) / 1000 : 0;
  return elapsed > 0.2 ? (state.value - (state.startValue ?? 0)) / elapsed : 0;
}

class LineProgress extends ProgressTotals {
  readonly #context: CliContext;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #announce: boolean;
  #startedAt: number | undefined;
  #lastLine = 0;

  constructor(context: CliContext, intervalSeconds: number, now: () => number, announce: boolean) {
    super();
    this.#context = context;
    this.#intervalMs = intervalSeconds * 1000;
    this.#now = now;
    this.#announce = announce;
  }

  override planned(files: ReadonlyArray<{ name: string; size: number }>): void {
    super.planned(files);
    // A copy plans once per manifest: the rate counts from the first plan.
    this.#startedAt ??= this.#now();
    this.#lastLine = this.#now();
    if (this.#announce) this.#context.stderr.write(`fetching ${files.length} file(s), ${formatBytes(this.total)}\n`);
  }

  override advanced(name: string, done: number): void {
    super.advanced(name, done);
    const now = this.#now();
    if (now - this.#lastLine < this.#intervalMs) return;
    this.#lastLine = now;
    const all = this.doneTotal();
    const seconds = (now - (this.#startedAt ?? now)) / 1000;
    const speed = seconds > 0 ? all / seconds : 0;
    const percent = this.total > 0 ? Math.floor((all / this.total) * 100) : 100;
    this.#context.stderr.write(
      `progress: ${formatBytes(all)}/${formatBytes(this.total)} (${percent}%) ${formatBytes(speed)}/s ETA ${speed > 0 ? formatDuration((this.total - all) / speed) : "?"}\n`,
    );
  }

  finished(name: string, status: FetchedFileStatus): void {
    if (!this.#announce) return;
    const size = this.sizes.get(name) ?? 0;
    const verb = status === "existing" ? "kept (already verified)" : status === "resumed" ? "resumed and verified" : "verified";
    this.#context.stderr.write(`${name}: ${formatBytes(size)} ${verb}\n`);
  }
}
