/**
 * A hostile guest kernel: the real guest runs, then one record it hands back is
 * rewritten with a lie before the host reads it — an INVOKE result field (exit,
 * exit_arg, pc, gas, instructions, a register), a PREPARE result (image id, code
 * address, a mapping's backing address or length), a PUT_CAPS address, or the mailbox's
 * own status and sequence number. The host must answer with a typed error (a lie it can
 * see poisons the sandbox: GuestProtocol) or a result; results are compared with engine
 * local's and every undetected lie is tallied by field (some, like a register's value,
 * no host can detect). Untyped errors, crashes and hangs are findings.
 */
import { CapPut, Invoke, InvokeMapping, Layout, Mailbox as MailboxLayout, Prepare } from '../../lib/abi/guest-abi.js';
import { MAILBOX_PAYLOAD_GPA } from '../../lib/guest/mailbox.js';

const MAILBOX_GPA = Layout.values.MAILBOX_GPA;
import { Sandbox, type LoadedImage } from '../../lib/sandbox/index.js';
import { testImage } from '../unit/sandbox-suite.js';
import type { SeededRandom } from '../unit/seeded-random.js';
import { FuzzRun, summary, type FuzzOptions, type FuzzReport } from './common.js';

type Lie = { field: string; apply(view: DataView, r: SeededRandom): void };

const EDGE32 = [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x1000, 0x1_0000];
const EDGE64 = [0n, 1n, 0xffff_ffffn, 1n << 32n, 1n << 63n, (1n << 64n) - 1n, 0xffff_8000_0000_0000n];

function u32Lie(field: string, at: number): Lie {
  return { field, apply: (v, r) => v.setUint32(at, r.bool() ? r.pick(EDGE32) : r.u32(), true) };
}
function u64Lie(field: string, at: number): Lie {
  return { field, apply: (v, r) => v.setBigUint64(at, r.bool() ? r.pick(EDGE64) : r.u64(), true) };
}

const I = (name: keyof typeof Invoke.offsets): number => MAILBOX_PAYLOAD_GPA + Invoke.offsets[name];
const INVOKE_LIES: Lie[] = [
  u32Lie('invoke.exit', I('exit')), u64Lie('invoke.exit_arg', I('exit_arg')), u32Lie('invoke.pc', I('pc')),
  u64Lie('invoke.gas', I('gas')), u64Lie('invoke.instructions', I('instructions')), u64Lie('invoke.regs[7]', I('regs') + 56),
];
const MAPPINGS = MAILBOX_PAYLOAD_GPA + Prepare.size;
const LOAD_LIES: Lie[] = [
  u32Lie('prepare.image_id', MAILBOX_PAYLOAD_GPA + Prepare.offsets.image_id), u64Lie('prepare.code_va', MAILBOX_PAYLOAD_GPA + Prepare.offsets.code_va),
  u64Lie('prepare.mapping[0].backing_va', MAPPINGS + InvokeMapping.offsets.backing_va), u64Lie('prepare.mapping[0].backed_len', MAPPINGS + InvokeMapping.offsets.backed_len),
  u64Lie('put_caps[0].data_va', MAILBOX_PAYLOAD_GPA + CapPut.offsets.data_va), u64Lie('put_caps[1].data_va', MAILBOX_PAYLOAD_GPA + CapPut.size + CapPut.offsets.data_va),
];
const MAILBOX_LIES: Lie[] = [u32Lie('mailbox.status', MAILBOX_GPA + MailboxLayout.offsets.status), u64Lie('mailbox.done_seq', MAILBOX_GPA + MailboxLayout.offsets.done_seq)];

export async function fuzzGuest(opts: FuzzOptions): Promise<FuzzReport> {
  const run = new FuzzRun(opts);
  if (!opts.kvm) return run.finish();
  const truth = Sandbox.create({ engine: 'local' });
  const sandbox = Sandbox.create({ engine: 'kvm', memorySize: 16 << 20 });
  const mixer = (regs: bigint[]): bigint => regs[7]! * 3n + 1n;
  for (const s of [truth, sandbox]) s.registerHostFunction(100, mixer);
  const truthImage = truth.loadImage(testImage());
  let image: LoadedImage = sandbox.loadImage(testImage());
  try {
    while (run.more()) {
      const r = run.rng(run.current);
      const load = r.chance(0.3);
      const lie = r.pick([...(load ? LOAD_LIES : INVOKE_LIES), ...MAILBOX_LIES]);
      const mailbox = sandbox.guest!.mailbox;
      const enter = mailbox.enter.bind(mailbox);
      let entries = r.below(load ? 2 : 2);
      mailbox.enter = (...a: Parameters<typeof enter>) => {
        const stop = enter(...a);
        if (entries-- === 0) lie.apply(new DataView(sandbox.guest!.memory.view.buffer), r);
        return stop;
      };
      const args = [r.u64() & 0xffffn, r.u64() & 0xffffn];
      const endpoint = 1 + r.below(3);
      if (load) {
        const built = testImage().addEndpoint(20 + r.below(100), { entryPc: 0 });
        const got = run.typed('load', () => sandbox.loadImage(built));
        run.count(`${lie.field} at load: ${got.outcome}`);
        if (got.value) {
          const a = run.typed('invoke after a lying load', () => sandbox.invokeSync(got.value!, endpoint, { args, gas: 10_000n, timeoutMs: 5_000 }));
          const b = run.typed('truth', () => truth.invokeSync(truthImage, endpoint, { args, gas: 10_000n }));
          if (summary(a) !== summary(b)) run.count(`${lie.field} at load: undetected, a later invoke differs`);
          sandbox.unloadImage(got.value);
        }
      } else {
        const a = run.typed('invoke', () => sandbox.invokeSync(image, endpoint, { args, gas: 10_000n, timeoutMs: 5_000 }));
        const b = run.typed('truth', () => truth.invokeSync(truthImage, endpoint, { args, gas: 10_000n }));
        const outcome = a.value === undefined ? a.outcome : summary(a) === summary(b) ? 'same result' : 'undetected: a different result';
        run.count(`${lie.field}: ${outcome}`);
      }
      mailbox.enter = enter;
      if (sandbox.poisonedBy !== undefined) {
        run.typed('reset', () => sandbox.reset());
        image = sandbox.loadImage(testImage());
      }
      const healthy = run.typed('after', () => sandbox.invokeSync(image, 1, { args: [2n, 3n] }));
      if (healthy.value?.regs[7] !== 5n) run.find(`after a ${lie.field} lie the sandbox neither works nor is poisoned (${healthy.outcome})`);
      run.next();
    }
  } finally {
    truth.close();
    sandbox.close();
  }
  return run.finish();
}
