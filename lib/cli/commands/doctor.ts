/** `nub doctor [--json]`: can this machine run nub? Checks /dev/kvm, then boots the guest. */
import { isNubError } from '../../errors.js';
import { loadKernelImage } from '../../guest/boot.js';
import { GuestVm, type BootInfoValue } from '../../guest/guest-vm.js';
import { DEFAULT_KVM_PATH, kvmInfo } from '../../native/index.js';
import { ExitStatus, type Command } from '../command.js';

/** Pings to time; the report shows the median (the first calls run cold). */
const PINGS = 101;

interface Check {
  name: string;
  ok: boolean;
  /** What was found, or why the check failed. */
  detail: string;
  code?: string;
}

interface Report {
  ok: boolean;
  checks: Check[];
  bootInfo?: Record<string, string | number>;
  directoryEntries?: number;
  bootTimeMs?: number;
  pingRoundTripUs?: number;
}

/** Runs `fn`; a thrown error becomes a failed check carrying its message (which says what to do). */
function check(report: Report, name: string, fn: () => string): boolean {
  try {
    report.checks.push({ name, ok: true, detail: fn() });
    return true;
  } catch (err) {
    const code = isNubError(err) ? err.code : undefined;
    report.checks.push({ name, ok: false, detail: err instanceof Error ? err.message : String(err), ...(code ? { code } : {}) });
    report.ok = false;
    return false;
  }
}

/** Boot info for people: addresses, sizes and identifiers in hex, version numbers as numbers. */
function describeBootInfo(info: BootInfoValue): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [name, value] of Object.entries(info)) {
    if (name.startsWith('_')) continue;
    out[name] = name.endsWith('version') ? Number(value) : `0x${(value as number | bigint).toString(16)}`;
  }
  return out;
}

function diagnose(kvmPath: string): Report {
  const report: Report = { ok: true, checks: [] };
  const kvmOk = check(report, 'kvm', () => {
    const info = kvmInfo(kvmPath);
    return `${kvmPath}: API version ${info.apiVersion}, ${Object.keys(info.capabilities).length} capabilities checked`;
  });
  const kernelOk = check(report, 'guest kernel', () => {
    const kernel = loadKernelImage();
    return `${kernel.path} (${kernel.bytes.length} bytes)`;
  });
  if (!kvmOk || !kernelOk) return report;
  check(report, 'boot', () => {
    using guest = GuestVm.boot({ kvmPath, timeoutMs: 10_000 });
    report.bootTimeMs = Number(guest.bootTimeMs.toFixed(3));
    report.bootInfo = describeBootInfo(guest.bootInfo);
    report.directoryEntries = guest.reader.len();
    const pingsUs = Array.from({ length: PINGS }, () => {
      const started = performance.now();
      guest.ping();
      return (performance.now() - started) * 1000;
    }).sort((a, b) => a - b);
    report.pingRoundTripUs = Number(pingsUs[PINGS >> 1]!.toFixed(1));
    return `guest booted in ${report.bootTimeMs} ms; its cap directory holds ${report.directoryEntries} entries`;
  });
  return report;
}

function render(report: Report): string {
  const lines = report.checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(13)} ${c.detail}${c.code ? ` [${c.code}]` : ''}`);
  if (report.bootInfo) {
    lines.push('', 'boot info:');
    for (const [name, value] of Object.entries(report.bootInfo)) lines.push(`  ${name.padEnd(17)} ${value}`);
    lines.push('', `directory entries   ${report.directoryEntries}`, `boot time           ${report.bootTimeMs} ms`, `ping round trip     ${report.pingRoundTripUs} µs (median of ${PINGS})`);
  }
  lines.push('', report.ok ? 'nub can run on this machine.' : 'nub cannot run on this machine: fix the failed check above.');
  return lines.join('\n');
}

export const command: Command = {
  summary: 'check that this machine can run nub (KVM, guest kernel, a test boot)',
  synopsis: '[--kvm PATH] [--json]',
  description: `Checks that this machine can run nub: ${DEFAULT_KVM_PATH} is present and usable (API
version, capabilities), the guest kernel is there, and a guest boots. Prints the guest's
boot info, its cap directory's entry count, the boot time and the ping round trip.
Exit status 1, with the reason and what to do, when a check fails.`,
  options: {
    kvm: { type: 'string', value: 'PATH', help: `check another KVM device node (default ${DEFAULT_KVM_PATH})` },
  },
  positionals: { min: 0, max: 0 },
  async run(values, _positionals, ctx) {
    const report = diagnose((values.kvm as string | undefined) ?? DEFAULT_KVM_PATH);
    const status = report.ok ? ExitStatus.OK : ExitStatus.FAILED;
    if (ctx.json) return { status, json: report };
    console.log(render(report));
    return { status };
  },
};
