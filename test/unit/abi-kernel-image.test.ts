// The KernelHeader at the start of kernel.bin: what the host accepts and rejects.
import assert from 'node:assert/strict';
import { BOOT_INFO_LAYOUT_VERSION, KERNEL_HEADER_MAGIC, KernelHeader, Layout } from '../../lib/abi/guest-abi.js';
import { NubError } from '../../lib/errors.js';
import { parseKernelImage } from '../../lib/guest/boot.js';

const L = Layout.values;
const KERNEL_VA = Number(L.GUEST_VA_BASE) + L.KERNEL_GPA;

type HeaderField = 'magic' | 'layout_version' | 'entry_va' | 'load_end_va' | 'stack_guard_va' | 'stack_top_va' | 'exception_stubs_va'
  | 'supervisor_start_va' | 'supervisor_end_va' | 'readonly_end_va';
/** Where the synthetic image keeps its exception stub table, and where its (supervisor) stubs are: page 1; ring-3 text is page 2. */
const STUBS_OFFSET = 0x100;
const STUB_OFFSET = (vector: number) => 0x1000 + 16 * vector;
const IMAGE_SIZE = 0x3234;

/** A synthetic image: a header laid out like the linker script's, then filler. */
function image(overrides: Partial<Record<HeaderField, number | bigint>> = {}, size = IMAGE_SIZE): Uint8Array {
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  const guard = Math.ceil((KERNEL_VA + size) / L.PAGE_SIZE) * L.PAGE_SIZE;
  const fields: Record<HeaderField, number | bigint> = {
    magic: KERNEL_HEADER_MAGIC,
    layout_version: BOOT_INFO_LAYOUT_VERSION,
    entry_va: KERNEL_VA + 0x2000,
    load_end_va: KERNEL_VA + size,
    stack_guard_va: guard,
    stack_top_va: guard + L.PAGE_SIZE + L.KERNEL_STACK_SIZE,
    exception_stubs_va: KERNEL_VA + STUBS_OFFSET,
    supervisor_start_va: KERNEL_VA + 0x1000,
    supervisor_end_va: KERNEL_VA + 0x2000,
    readonly_end_va: KERNEL_VA + 0x3000,
    ...overrides,
  };
  for (const [name, value] of Object.entries(fields)) KernelHeader.set(view, 0, name as HeaderField, value);
  for (let v = 0; v < 32; v++) view.setBigUint64(STUBS_OFFSET + 8 * v, BigInt(KERNEL_VA + STUB_OFFSET(v)), true);
  return bytes;
}

function rejects(bytes: Uint8Array): void {
  assert.throws(() => parseKernelImage(bytes), (err: unknown) => err instanceof NubError && err.code === 'BadKernelImage');
}

describe('kernel image header', () => {
  it('accepts a well-formed image and reports its layout', () => {
    const kernel = parseKernelImage(image());
    assert.equal(kernel.entryVa, KERNEL_VA + 0x2000);
    assert.deepEqual([kernel.supervisorStartGpa, kernel.supervisorEndGpa, kernel.readonlyEndGpa], [0x1000, 0x2000, 0x3000].map((o) => L.KERNEL_GPA + o));
    assert.equal(kernel.loadEndGpa, L.KERNEL_GPA + IMAGE_SIZE);
    assert.equal(kernel.stackGuardGpa % L.PAGE_SIZE, 0);
    assert.ok(kernel.stackGuardGpa >= kernel.loadEndGpa);
  });

  it('builds one interrupt gate per exception stub, on the exception stack', () => {
    const { idt } = parseKernelImage(image());
    assert.equal(idt.length, 32 * 16);
    const view = new DataView(idt.buffer, idt.byteOffset, idt.length);
    for (let v = 0; v < 32; v++) {
      const at = 16 * v;
      const target = view.getUint16(at, true) + view.getUint16(at + 6, true) * 0x1_0000 + view.getUint32(at + 8, true) * 0x1_0000_0000;
      assert.equal(target, KERNEL_VA + STUB_OFFSET(v), `vector ${v}`);
      assert.equal(view.getUint8(at + 4), 1, 'IST1');
      assert.equal(view.getUint8(at + 5) & 0x80, 0x80, 'present');
      assert.equal(view.getUint8(at + 5) & 0x0f, 0xe, '64-bit interrupt gate');
    }
  });

  it('rejects a file shorter than the header', () => rejects(image().slice(0, KernelHeader.size - 1)));
  it('rejects a wrong magic', () => rejects(image({ magic: 0x1234n })));
  it('rejects another layout version', () => rejects(image({ layout_version: BOOT_INFO_LAYOUT_VERSION + 1 })));
  it('rejects a header whose image end disagrees with the file', () => rejects(image({ load_end_va: KERNEL_VA + IMAGE_SIZE + 8 })));
  it('rejects an entry point outside the image', () => {
    rejects(image({ entry_va: KERNEL_VA }));
    rejects(image({ entry_va: KERNEL_VA + IMAGE_SIZE }));
  });
  it('rejects an exception stub table or a stub outside the image', () => {
    rejects(image({ exception_stubs_va: KERNEL_VA + IMAGE_SIZE - 8 }));
    rejects(image({ exception_stubs_va: KERNEL_VA + STUBS_OFFSET + 1 }));
    const bytes = image();
    new DataView(bytes.buffer).setBigUint64(STUBS_OFFSET + 8 * 13, 0x1000n, true);
    rejects(bytes);
  });
  it('rejects supervisor / read-only sections that are misaligned, out of order, or do not hold the stubs and the entry', () => {
    rejects(image({ supervisor_start_va: KERNEL_VA + 0x1008 }));
    rejects(image({ supervisor_start_va: KERNEL_VA }));
    rejects(image({ supervisor_end_va: KERNEL_VA + 0x1000 })); // the stubs fall outside
    rejects(image({ readonly_end_va: KERNEL_VA + 0x1000 }));
    rejects(image({ entry_va: KERNEL_VA + 0x1000 })); // the entry runs in ring 3, not in the supervisor section
    rejects(image({ readonly_end_va: KERNEL_VA + 0x8000 }));
  });
  it('rejects a stack that does not follow the image', () => {
    rejects(image({ stack_guard_va: KERNEL_VA }));
    rejects(image({ stack_top_va: 2n ** 60n }));
  });
});
