// `nub doctor` end to end: the CLI as a user runs it, on this machine's /dev/kvm.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BOOT_INFO_MAGIC } from '../../lib/abi/guest-abi.js';
import { describeKvm } from './kvm-available.js';

// This file runs from <out dir>/test/kvm/; the CLI is <out dir>/lib/cli/main.js.
const cli = fileURLToPath(new URL('../../lib/cli/main.js', import.meta.url));

function doctor(...args: string[]): { status: number | null; report: { ok: boolean; checks: { name: string; ok: boolean; code?: string }[]; bootInfo?: Record<string, unknown>; directoryEntries?: number; bootTimeMs?: number } } {
  const r = spawnSync(process.execPath, [cli, 'doctor', '--json', ...args], { encoding: 'utf8' });
  return { status: r.status, report: JSON.parse(r.stdout) };
}

describeKvm('nub doctor', function () {
  this.timeout(30_000);

  it('passes on this machine and shows the booted guest', () => {
    const { status, report } = doctor();
    assert.equal(status, 0);
    assert.ok(report.ok);
    assert.deepEqual(report.checks.map((c) => [c.name, c.ok]), [['kvm', true], ['guest kernel', true], ['boot', true]]);
    assert.equal(report.bootInfo!.magic, `0x${BOOT_INFO_MAGIC.toString(16)}`);
    assert.equal(report.directoryEntries, 0);
    assert.ok(report.bootTimeMs! > 0);
  });

  it('fails with the reason when the KVM device is missing', () => {
    const { status, report } = doctor('--kvm', '/dev/nub-no-such-kvm');
    assert.equal(status, 1);
    assert.equal(report.ok, false);
    const kvm = report.checks.find((c) => c.name === 'kvm')!;
    assert.equal(kvm.ok, false);
    assert.equal(kvm.code, 'ENOENT');
    assert.equal(report.bootInfo, undefined, 'no boot is attempted without KVM');
  });
});
