/**
 * Fixed byte layouts shared by the host and the guest kernel.
 *
 * A layout is declared once here (field names, widths, order) and everything else
 * is derived from the declaration: the offsets and size, the typed accessors the
 * host uses on guest memory, and the C header the guest includes (scripts/gen-abi.mjs,
 * which also emits `_Static_assert`s on every offset and the size). Fields must sit at
 * their natural alignment with no implicit padding, so the C compiler cannot lay the
 * struct out differently from what is declared here.
 */

export type ScalarType = 'u8' | 'u16' | 'u32' | 'u64';
/** A field is a scalar, or a fixed array of scalars (`['u8', 32]` = 32 bytes). */
export type FieldType = ScalarType | readonly [ScalarType, number];

export interface FieldLayout {
  readonly name: string;
  readonly scalar: ScalarType;
  /** Element count; 1 for a plain scalar. */
  readonly count: number;
  readonly isArray: boolean;
  readonly offset: number;
  readonly size: number;
}

const SCALAR_SIZE: Record<ScalarType, number> = { u8: 1, u16: 2, u32: 4, u64: 8 };

export type FieldValue<T extends FieldType> = T extends 'u64' ? bigint : T extends ScalarType ? number : Uint8Array | number[];

export interface StructLayout<F extends Record<string, FieldType>> {
  /** C struct tag, e.g. `nub_boot_info`. */
  readonly cName: string;
  readonly doc: string;
  readonly size: number;
  /** Largest field alignment: the alignment the struct needs in memory. */
  readonly align: number;
  readonly fields: readonly FieldLayout[];
  readonly offsets: { readonly [K in keyof F]: number };
  /** Reads one field of the struct at byte `base` of `view`. u64 fields come back as bigint. */
  get<K extends keyof F & string>(view: DataView, base: number, field: K): FieldValue<F[K]>;
  /** Writes one scalar field of the struct at byte `base` of `view`. */
  set<K extends keyof F & string>(view: DataView, base: number, field: K, value: number | bigint): void;
}

export function defineStruct<F extends Record<string, FieldType>>(cName: string, doc: string, fields: F): StructLayout<F> {
  const laid: FieldLayout[] = [];
  const offsets: Record<string, number> = {};
  let offset = 0;
  let align = 1;
  for (const [name, type] of Object.entries(fields)) {
    const [scalar, count, isArray] = typeof type === 'string' ? [type, 1, false] : [type[0], type[1], true];
    const elem = SCALAR_SIZE[scalar];
    if (offset % elem !== 0) {
      throw new Error(`${cName}.${name}: offset ${offset} is not ${elem}-byte aligned; add an explicit padding field`);
    }
    if (!Number.isInteger(count) || count < 1) throw new Error(`${cName}.${name}: bad array length ${count}`);
    laid.push({ name, scalar, count, isArray, offset, size: elem * count });
    offsets[name] = offset;
    offset += elem * count;
    align = Math.max(align, elem);
  }
  if (offset % align !== 0) throw new Error(`${cName}: size ${offset} is not a multiple of its alignment ${align}; add tail padding`);
  const byName = new Map(laid.map((f) => [f.name, f]));
  const field = (name: string): FieldLayout => {
    const f = byName.get(name);
    if (!f) throw new Error(`${cName} has no field ${name}`);
    return f;
  };
  return {
    cName,
    doc,
    size: offset,
    align,
    fields: laid,
    offsets: offsets as { [K in keyof F]: number },
    get(view, base, name) {
      const f = field(name);
      const at = base + f.offset;
      if (f.isArray) {
        if (f.scalar !== 'u8') throw new Error(`${cName}.${name}: use a typed view for non-byte arrays`);
        return new Uint8Array(view.buffer, view.byteOffset + at, f.count).slice() as never;
      }
      return readScalar(view, at, f.scalar) as never;
    },
    set(view, base, name, value) {
      const f = field(name);
      if (f.isArray) throw new Error(`${cName}.${name}: arrays are written byte-wise`);
      writeScalar(view, base + f.offset, f.scalar, value);
    },
  };
}

export function readScalar(view: DataView, at: number, scalar: ScalarType): number | bigint {
  switch (scalar) {
    case 'u8': return view.getUint8(at);
    case 'u16': return view.getUint16(at, true);
    case 'u32': return view.getUint32(at, true);
    case 'u64': return view.getBigUint64(at, true);
  }
}

export function writeScalar(view: DataView, at: number, scalar: ScalarType, value: number | bigint): void {
  switch (scalar) {
    case 'u8': view.setUint8(at, Number(value)); break;
    case 'u16': view.setUint16(at, Number(value), true); break;
    case 'u32': view.setUint32(at, Number(value), true); break;
    case 'u64': view.setBigUint64(at, BigInt(value), true); break;
  }
}

/** A constant shared with C: an integer, or a table of them (emitted as a brace initializer). */
export type ConstantValue = number | bigint | readonly number[];

/** A named group of constants shared with C (emitted as `#define PREFIX_NAME value`). */
export interface ConstantGroup<C extends Record<string, ConstantValue>> {
  readonly prefix: string;
  readonly doc: string;
  readonly values: C;
}

export function defineConstants<C extends Record<string, ConstantValue>>(prefix: string, doc: string, values: C): ConstantGroup<C> {
  return { prefix, doc, values };
}
