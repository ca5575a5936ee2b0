/**
 * What every `nub <name>` subcommand module in `lib/cli/commands/` exports as `command`,
 * and what the CLI gives it. lib/cli/main.ts parses the options (the command's own plus
 * COMMON_OPTIONS) and turns errors into exit statuses and output (docs/cli.md).
 */
import { NubError } from '../errors.js';

/** An option as node:util parseArgs takes it, plus its line for `--help`. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** Shown in the usage text, e.g. `--gas N   gas for the invocation`. */
  help: string;
  /** The value's placeholder in the usage text (`N`, `FILE`). */
  value?: string;
}

export interface CliContext {
  /** --json: the command prints one JSON object on stdout, errors included. */
  json: boolean;
  /** --quiet: no notices or live status on stderr. */
  quiet: boolean;
  /** Notices for people (stderr); none with --quiet. */
  notice(line: string): void;
}

export type ParsedValues = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  /** One line for `nub --help`. */
  summary: string;
  /** The argument part of the usage line, e.g. `<image.ssz> [options]`. */
  synopsis: string;
  /** What the command does, a few lines for `nub help <name>`. */
  description: string;
  options: Record<string, OptionSpec>;
  /** How many positional arguments it takes. */
  positionals: { min: number; max: number };
  /**
   * Runs the command and resolves to its exit status (ExitStatus). With --json it
   * returns the JSON object to print instead of printing it.
   */
  run(values: ParsedValues, positionals: string[], ctx: CliContext): Promise<{ status: number; json?: object }>;
}

/** Exit statuses of every command (docs/cli.md). */
export const ExitStatus = {
  /** Success; for `run`, the endpoint replied (HALT). */
  OK: 0,
  /** A typed failure: an invalid image, a refused call, a timeout, a failed doctor check. */
  FAILED: 1,
  /** Bad command line: one line saying what is wrong, then the usage. */
  USAGE: 2,
  /** `run`: the guest ended with an exit other than HALT (PANIC, OUT_OF_GAS, PAGE_FAULT, HOST_CALL, ECALL, TRAP). */
  GUEST_EXIT: 3,
  /** A bug in nub (EX_SOFTWARE): the stack trace is shown with --debug. */
  INTERNAL: 70,
} as const;

/** A bad command line; main prints its message and the command's usage and exits USAGE. */
export class UsageError extends NubError {
  constructor(message: string) {
    super('Cli.Usage', message);
  }
}
