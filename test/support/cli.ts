/** Runs the built `nub` CLI in a child process, as a user would: status, output and (with --json) the parsed object. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// This file runs from <out dir>/test/support/; the CLI is <out dir>/lib/cli/main.js.
export const CLI = fileURLToPath(new URL('../../lib/cli/main.js', import.meta.url));

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed, when it is JSON. */
  json: Record<string, any> | undefined;
}

export function nub(args: string[], env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []): CliRun {
  const r = spawnSync(process.execPath, [...nodeArgs, CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  let json: Record<string, any> | undefined;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    json = undefined;
  }
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, json };
}
