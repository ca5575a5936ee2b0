// The KernelHeader at the start of kernel.bin: what the host accepts and rejects.
import assert from 'node:assert/strict';
import { BOOT_INFO_LAYOUT_VERSION, KERNEL_HEADER_MAGIC, KernelHeader, Layout } from '../../lib/abi/guest-abi.js';
import { NubError } from '../../lib/errors.js';
import { parseKernelImage } from '../../lib/guest/boot.js';

const L = Layout.values;
const KERNEL_VA = Number(L.GUEST_VA_BASE) + L.KERNEL_GPA;
const IMAGE_SIZE = 0x1234;

type HeaderField = 'magic' | 'layout_version' | 'entry_va' | 'load_end_va' | 'stack_guard_va' | 'stack_top_va';

/** A synthetic image: a header laid out like the linker script's, then filler. */
function image(overrides: Partial<Record<HeaderField, number | bigint>> = {}, size = IMAGE_SIZE): Uint8Array {
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  const guard = Math.ceil((KERNEL_VA + size) / L.PAGE_SIZE) * L.PAGE_SIZE;
  const fields: Record<HeaderField, number | bigint> = {
    magic: KERNEL_HEADER_MAGIC,
    layout_version: BOOT_INFO_LAYOUT_VERSION,
    entry_va: KERNEL_VA + KernelHeader.size,
    load_end_va: KERNEL_VA + size,
    stack_guard_va: guard,
    stack_top_va: guard + L.PAGE_SIZE + L.KERNEL_STACK_SIZE,
    ...overrides,
  };
  for (const [name, value] of Object.entries(fields)) KernelHeader.set(view, 0, name as HeaderField, value);
  return bytes;
}

function rejects(bytes: Uint8Array): void {
  assert.throws(() => parseKernelImage(bytes), (err: unknown) => err instanceof NubError && err.code === 'BadKernelImage');
}

describe('kernel image header', () => {
  it('accepts a well-formed image and reports its layout', () => {
    const kernel = parseKernelImage(image());
    assert.equal(kernel.entryVa, KERNEL_VA + KernelHeader.size);
    assert.equal(kernel.loadEndGpa, L.KERNEL_GPA + IMAGE_SIZE);
    assert.equal(kernel.stackGuardGpa % L.PAGE_SIZE, 0);
    assert.ok(kernel.stackGuardGpa >= kernel.loadEndGpa);
  });

  it('rejects a file shorter than the header', () => rejects(image().slice(0, KernelHeader.size - 1)));
  it('rejects a wrong magic', () => rejects(image({ magic: 0x1234n })));
  it('rejects another layout version', () => rejects(image({ layout_version: BOOT_INFO_LAYOUT_VERSION + 1 })));
  it('rejects a header whose image end disagrees with the file', () => rejects(image({ load_end_va: KERNEL_VA + IMAGE_SIZE + 8 })));
  it('rejects an entry point outside the image', () => {
    rejects(image({ entry_va: KERNEL_VA }));
    rejects(image({ entry_va: KERNEL_VA + IMAGE_SIZE }));
  });
  it('rejects a stack that does not follow the image', () => {
    rejects(image({ stack_guard_va: KERNEL_VA }));
    rejects(image({ stack_top_va: 2n ** 60n }));
  });
});
