/** A one-line live status on stderr during a long command: only on a terminal, never with NO_COLOR or --quiet. */
import type { CliContext } from './command.js';

const FIRST_AFTER_MS = 500;
const EVERY_MS = 250;

/** Starts the status line (shown after half a second); the returned function removes it. */
export function liveStatus(ctx: CliContext, line: (elapsedMs: number) => string): () => void {
  const stream = process.stderr;
  if (!stream.isTTY || process.env.NO_COLOR !== undefined || ctx.quiet) return () => {};
  const started = performance.now();
  let shown = false;
  const draw = (): void => {
    shown = true;
    stream.write(`\r${line(performance.now() - started)}\x1b[K`);
  };
  let interval: ReturnType<typeof setInterval> | undefined;
  const first = setTimeout(() => {
    draw();
    interval = setInterval(draw, EVERY_MS);
  }, FIRST_AFTER_MS);
  return () => {
    clearTimeout(first);
    clearInterval(interval);
    if (shown) stream.write('\r\x1b[K');
  };
}
