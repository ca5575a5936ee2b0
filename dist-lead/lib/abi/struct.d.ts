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
type FieldValue<T extends FieldType> = T extends 'u64' ? bigint : T extends ScalarType ? number : Uint8Array | number[];
export interface StructLayout<F extends Record<string, FieldType>> {
    /** C struct tag, e.g. `nub_boot_info`. */
    readonly cName: string;
    readonly doc: string;
    readonly size: number;
    /** Largest field alignment: the alignment the struct needs in memory. */
    readonly align: number;
    readonly fields: readonly FieldLayout[];
    readonly offsets: {
        readonly [K in keyof F]: number;
    };
    /** Reads one field of the struct at byte `base` of `view`. u64 fields come back as bigint. */
    get<K extends keyof F & string>(view: DataView, base: number, field: K): FieldValue<F[K]>;
    /** Writes one scalar field of the struct at byte `base` of `view`. */
    set<K extends keyof F & string>(view: DataView, base: number, field: K, value: number | bigint): void;
}
export declare function defineStruct<F extends Record<string, FieldType>>(cName: string, doc: string, fields: F): StructLayout<F>;
export declare function readScalar(view: DataView, at: number, scalar: ScalarType): number | bigint;
export declare function writeScalar(view: DataView, at: number, scalar: ScalarType, value: number | bigint): void;
/** A named group of integer constants shared with C (emitted as `#define PREFIX_NAME value`). */
export interface ConstantGroup<C extends Record<string, number | bigint>> {
    readonly prefix: string;
    readonly doc: string;
    readonly values: C;
}
export declare function defineConstants<C extends Record<string, number | bigint>>(prefix: string, doc: string, values: C): ConstantGroup<C>;
export {};
