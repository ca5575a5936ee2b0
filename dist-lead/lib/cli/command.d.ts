/** What every `nub <name>` subcommand module in `lib/cli/commands/` exports as `command`. */
export interface Command {
    /** One line for `nub --help`. */
    summary: string;
    /** Full usage text for `nub <name> --help`. */
    usage: string;
    /** Runs the command; resolves to the process exit status. */
    run(argv: string[]): Promise<number>;
}
