/**
 * What every fuzzer shares (`npm run fuzz`, scripts/fuzz.mjs): a seeded run bounded by
 * cases or seconds, a tally of outcomes, and findings — an input that ended in anything
 * but a value or a NubError, a hang, engines that disagree, memory that grew.
 */
import { isNubError } from '../../lib/errors.js';
import { Sandbox, type SandboxResult } from '../../lib/sandbox/index.js';
import { observe } from '../support/random-program.js';
import { SeededRandom } from '../unit/seeded-random.js';

export interface FuzzOptions {
  seed: number;
  /** Stop after this many cases... */
  cases: number;
  /** ...or after this many seconds, whichever comes first. */
  seconds: number;
  /** Engine kvm too (a fuzzer that needs it does nothing without). */
  kvm: boolean;
  onProgress?: (done: number, findings: number) => void;
}

export interface Finding {
  case: number;
  what: string;
  /** Enough to replay it: the seed of the case, and its input when there is one. */
  seed: number;
  input?: string;
}

export interface FuzzReport {
  cases: number;
  seconds: number;
  outcomes: Map<string, number>;
  findings: Finding[];
  rssGrowthBytes: number;
}

/** The outcome of a call: 'ok', or the NubError's code; anything else thrown is a finding (returned as 'untyped'). */
export type Outcome = string;

export class FuzzRun {
  readonly report: FuzzReport = { cases: 0, seconds: 0, outcomes: new Map(), findings: [], rssGrowthBytes: 0 };
  readonly #opts: FuzzOptions;
  readonly #started = performance.now();
  readonly #rss = process.memoryUsage().rss;
  current = 0;

  constructor(opts: FuzzOptions) {
    this.#opts = opts;
  }

  /** The seeded random source of case `i` (each case replays alone from the run's seed). */
  rng(i: number): SeededRandom {
    return new SeededRandom((this.#opts.seed * 1_000_003 + i) >>> 0);
  }

  caseSeed(i: number): number {
    return (this.#opts.seed * 1_000_003 + i) >>> 0;
  }

  more(): boolean {
    return this.current < this.#opts.cases && performance.now() - this.#started < this.#opts.seconds * 1000;
  }

  count(outcome: Outcome): void {
    this.report.outcomes.set(outcome, (this.report.outcomes.get(outcome) ?? 0) + 1);
  }

  find(what: string, input?: Uint8Array): void {
    if (what.length > 600) what = `${what.slice(0, 600)}...`;
    this.report.findings.push({ case: this.current, what, seed: this.caseSeed(this.current), ...(input ? { input: Buffer.from(input).toString('hex') } : {}) });
  }

  /** Runs `fn`; a NubError is an outcome, anything else a finding. */
  typed<T>(what: string, fn: () => T, input?: Uint8Array): { value?: T; outcome: Outcome } {
    try {
      const value = fn();
      this.#trace(what, 'ok');
      return { value, outcome: 'ok' };
    } catch (err) {
      this.#trace(what, err);
      if (isNubError(err)) return { outcome: err.code };
      this.find(`${what}: untyped ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`, input);
      return { outcome: 'untyped' };
    }
  }

  async typedAsync<T>(what: string, p: Promise<T>, timeoutMs = 30_000): Promise<{ value?: T; outcome: Outcome }> {
    let timer: NodeJS.Timeout | undefined;
    const hang = new Promise<'hang'>((resolve) => { timer = setTimeout(() => resolve('hang'), timeoutMs); });
    try {
      const value = await Promise.race([p, hang]);
      if (value === 'hang') {
        this.find(`${what}: no answer within ${timeoutMs} ms`);
        return { outcome: 'hang' };
      }
      return { value: value as T, outcome: 'ok' };
    } catch (err) {
      if (isNubError(err)) return { outcome: err.code };
      this.find(`${what}: untyped ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
      return { outcome: 'untyped' };
    } finally {
      clearTimeout(timer);
    }
  }

  /** NUB_FUZZ_TRACE=<case> prints every call of that case and how it ended. */
  #trace(what: string, outcome: unknown): void {
    if (process.env.NUB_FUZZ_TRACE === String(this.current)) console.error(`case ${this.current}: ${what} -> ${outcome instanceof Error ? `${(outcome as { code?: string }).code ?? outcome.name}: ${outcome.message}` : String(outcome)}`);
  }

  next(): void {
    this.current++;
    this.report.cases = this.current;
    if (this.current % 10 === 0) this.#opts.onProgress?.(this.current, this.report.findings.length);
  }

  finish(): FuzzReport {
    this.report.seconds = (performance.now() - this.#started) / 1000;
    this.report.rssGrowthBytes = process.memoryUsage().rss - this.#rss;
    this.#opts.onProgress?.(this.current, this.report.findings.length);
    return this.report;
  }
}

/** Two sandboxes, one per engine, that should agree on everything observable. */
export class EnginePair {
  readonly local = Sandbox.create({ engine: 'local' });
  readonly kvm: Sandbox | undefined;
  constructor(kvm: boolean) {
    this.kvm = kvm ? Sandbox.create({ engine: 'kvm', memorySize: 64 << 20 }) : undefined;
  }
  close(): void {
    this.local.close();
    this.kvm?.close();
  }
}

/** A comparable summary of a result or a failure: what both engines must agree on. */
export function summary(outcome: { value?: SandboxResult; outcome: Outcome }): string {
  if (outcome.value === undefined) return `error ${outcome.outcome}`;
  return JSON.stringify(observe(outcome.value), (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));
}
