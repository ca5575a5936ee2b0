/** The PVM2 machine: decoder, block analysis and gas, and the reference interpreter (engine `local`). */
export {
  CODE_BASE, DATA_BASE, PAGE_SIZE, NUM_REGS, MAX_CODE_SIZE, Exit, Gas, exitName, HOST_CALL_MIN, HOST_CALL_MAX, MACHINE_CONSTANTS, ADDRESS_SPACE,
  PHI_X_REGISTERS, phiToX, xToPhi,
  type ExitCode, type GasClass,
} from './abi.js';
export { ISA, type Form, type OpInfo } from './isa.js';
export { decodeAt, isLegalRegister, type Instruction } from './decoder.js';
export { disassemble, registerName } from './disasm.js';
export { prepareProgram, isBlockStart, gasFrom, type Program } from './program.js';
export type { MappingSpec } from './memory.js';
export {
  runMachine, invokeLocal, endpointInput, findEndpoint, programOf, resultCapsOf, MAX_ARGS,
  type MachineInput, type InvokeResult, type MachineStop, type InvokeOptions, type HostFunction, type MemoryView, type ResultCap,
} from './invoke.js';
export { frameSpec, resolveMappings, mappingSource, dataCapOf, type ArgCap, type FrameCap, type FrameSpec, type FrameSlotSpec, type RootData } from './frame.js';
export { KernelOp, KernelStatus, KernelGas, SlotRef } from './kernel-ops.js';
