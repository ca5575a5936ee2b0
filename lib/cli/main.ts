#!/usr/bin/env node
/**
 * `nub <command> ...`: each command lives in `commands/<name>.js` and exports a
 * `command: Command`. Commands are found by file name, so adding one needs no
 * central list. This file owns the conventions every command shares (docs/cli.md):
 * option parsing, `--help`/`nub help CMD`/`--version`, `--json` errors, exit statuses.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ExitStatus, UsageError, type CliContext, type Command, type OptionSpec, type ParsedValues } from './command.js';
import { NubError } from '../errors.js';
import { packageRoot } from '../native/binding.js';

const commandsDir = join(dirname(fileURLToPath(import.meta.url)), 'commands');

/** Options every command takes. */
const COMMON_OPTIONS: Record<string, OptionSpec> = {
  json: { type: 'boolean', help: 'print one JSON object on stdout, errors included' },
  quiet: { type: 'boolean', short: 'q', help: 'no notices and no live status on stderr' },
  debug: { type: 'boolean', help: 'show the stack trace of an internal error' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

function commandNames(): string[] {
  return readdirSync(commandsDir).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3)).sort();
}

async function loadCommand(name: string): Promise<Command | undefined> {
  if (!/^[a-z][a-z0-9-]*$/.test(name) || !commandNames().includes(name)) return undefined;
  return ((await import(`./commands/${name}.js`)) as { command: Command }).command;
}

function version(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

function usageOf(name: string, cmd: Command): string {
  const options = Object.entries({ ...cmd.options, ...COMMON_OPTIONS }).map(([long, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : ''}--${long}${o.value ? ` ${o.value}` : ''}`;
    return `  ${flag.padEnd(22)} ${o.help}`;
  });
  return [`usage: nub ${name} ${cmd.synopsis}`, '', cmd.description, '', 'options:', ...options].join('\n');
}

async function overview(): Promise<string> {
  const lines = ['usage: nub <command> [options]', '', 'commands:'];
  for (const name of commandNames()) lines.push(`  ${name.padEnd(10)} ${(await loadCommand(name))!.summary}`);
  lines.push('', "'nub help <command>' or 'nub <command> --help' shows a command's options;",
    "'nub --version' prints the version. Exit statuses: 0 ok, 1 failed, 2 usage, 3 guest exit other than HALT, 70 internal error.");
  return lines.join('\n');
}

function errorJson(err: NubError): object {
  return { ok: false, error: { code: err.code, message: err.message, path: err.path ?? null } };
}

/** Runs one command line; returns the exit status. Output goes to stdout/stderr. */
async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv.filter((a) => a !== '--debug');
  if (name === '--version' || name === '-V') {
    console.log(version());
    return ExitStatus.OK;
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined;
    const cmd = topic === undefined ? undefined : await loadCommand(topic);
    if (topic !== undefined && cmd === undefined) {
      console.error(`nub: no command '${topic}'\n\n${await overview()}`);
      return ExitStatus.USAGE;
    }
    console.log(cmd ? usageOf(topic!, cmd) : await overview());
    return name === undefined ? ExitStatus.USAGE : ExitStatus.OK;
  }
  const json = rest.includes('--json');
  const cmd = await loadCommand(name);
  if (!cmd) {
    const message = `no command '${name}'; 'nub --help' lists them`;
    if (json) console.log(JSON.stringify(errorJson(new UsageError(message)), null, 2));
    console.error(`nub: ${message}`);
    return ExitStatus.USAGE;
  }
  try {
    let parsed: { values: ParsedValues; positionals: string[] };
    try {
      parsed = parseArgs({ args: rest, options: { ...cmd.options, ...COMMON_OPTIONS }, allowPositionals: true, strict: true }) as typeof parsed;
    } catch (err) {
      throw new UsageError((err as Error).message.replace(/\s*\n\s*/g, ' ')); // one line
    }
    const { values, positionals } = parsed;
    if (values.help) {
      console.log(usageOf(name, cmd));
      return ExitStatus.OK;
    }
    const { min, max } = cmd.positionals;
    if (positionals.length < min || positionals.length > max) {
      throw new UsageError(positionals.length < min ? 'missing argument' : `unexpected argument '${positionals[max]}'`);
    }
    const quiet = values.quiet === true;
    const ctx: CliContext = { json, quiet, notice: (line) => { if (!quiet) console.error(`nub ${name}: ${line}`); } };
    const { status, json: out } = await cmd.run(values, positionals, ctx);
    if (json && out) console.log(JSON.stringify({ ok: status === ExitStatus.OK, ...out }, null, 2));
    return status;
  } catch (err) {
    if (err instanceof UsageError) {
      if (json) console.log(JSON.stringify(errorJson(err), null, 2));
      console.error(`nub ${name}: ${err.message}\n\n${usageOf(name, cmd)}`);
      return ExitStatus.USAGE;
    }
    if (err instanceof NubError) {
      if (json) console.log(JSON.stringify(errorJson(err), null, 2));
      else console.error(`nub ${name}: error [${err.code}]${err.path ? ` at ${err.path}` : ''}: ${err.message}`);
      return ExitStatus.FAILED;
    }
    throw err;
  }
}

const debug = process.argv.includes('--debug');
main(process.argv.slice(2)).then(
  (status) => { process.exitCode = status; },
  (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    if (process.argv.includes('--json')) console.log(JSON.stringify(errorJson(new NubError('Internal', message)), null, 2));
    console.error(`nub: internal error: ${message}`);
    console.error(debug && err instanceof Error ? err.stack : '(run again with --debug for the stack trace)');
    process.exitCode = ExitStatus.INTERNAL;
  },
);
