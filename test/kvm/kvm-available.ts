/**
 * `describeKvm`: a mocha `describe` for tests that need the real /dev/kvm. It skips
 * only when the device does not exist at all, and then says so loudly; when the device
 * exists the tests always run, so a permission problem fails them instead of hiding.
 */
import { existsSync } from 'node:fs';

export const KVM_PATH = '/dev/kvm';

/** True when /dev/kvm exists (whether or not this user may open it). */
export const kvmPresent: boolean = existsSync(KVM_PATH);

let bannerShown = false;

function showSkipBanner(): void {
  if (bannerShown) return;
  bannerShown = true;
  const line = '='.repeat(78);
  console.warn(
    `\n${line}\n  SKIPPING KVM TESTS: ${KVM_PATH} does not exist on this machine.\n` +
      '  They need Linux KVM (load kvm_intel or kvm_amd; enable nested virtualization in a VM).\n' +
      `${line}\n`,
  );
}

export function describeKvm(title: string, body: (this: Mocha.Suite) => void): Mocha.Suite | void {
  if (kvmPresent) return describe(title, body);
  showSkipBanner();
  return describe.skip(`${title} (skipped: no ${KVM_PATH})`, body);
}
