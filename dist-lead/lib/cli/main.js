#!/usr/bin/env node
/**
 * `nub <command> ...`: each command lives in `commands/<name>.js` and exports a
 * `command: Command`. Commands are found by file name, so adding one needs no
 * central list.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NubError } from '../errors.js';
const commandsDir = join(dirname(fileURLToPath(import.meta.url)), 'commands');
function commandNames() {
    return readdirSync(commandsDir)
        .filter((f) => f.endsWith('.js'))
        .map((f) => f.slice(0, -3))
        .sort();
}
async function loadCommand(name) {
    if (!/^[a-z][a-z0-9-]*$/.test(name) || !commandNames().includes(name))
        return undefined;
    const mod = (await import(`./commands/${name}.js`));
    return mod.command;
}
async function printHelp() {
    const lines = ['usage: nub <command> [options]', '', 'commands:'];
    for (const name of commandNames()) {
        const cmd = await loadCommand(name);
        if (cmd)
            lines.push(`  ${name.padEnd(10)} ${cmd.summary}`);
    }
    lines.push('', "Run 'nub <command> --help' for a command's options.");
    console.log(lines.join('\n'));
}
async function main(argv) {
    const [name, ...rest] = argv;
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
        await printHelp();
        return name === undefined ? 2 : 0;
    }
    const cmd = await loadCommand(name);
    if (!cmd) {
        console.error(`nub: unknown command '${name}'. Run 'nub --help' to list the commands.`);
        return 2;
    }
    if (rest.includes('--help') || rest.includes('-h')) {
        console.log(cmd.usage);
        return 0;
    }
    return cmd.run(rest);
}
main(process.argv.slice(2)).then((status) => { process.exitCode = status; }, (err) => {
    if (err instanceof NubError) {
        console.error(`nub: error [${err.code}]${err.path ? ` at ${err.path}` : ''}: ${err.message}`);
    }
    else {
        console.error('nub: internal error:', err);
    }
    process.exitCode = 1;
});
//# sourceMappingURL=main.js.map