export declare const Layout: import("./struct.js").ConstantGroup<{
    PAGE_SIZE: number;
    GUEST_VA_BASE: bigint;
    GDT_GPA: number;
    BOOT_INFO_GPA: number;
    FAULT_GPA: number;
    MAILBOX_GPA: number;
    MAILBOX_PAGES: number;
    PAGE_TABLES_GPA: number;
    PAGE_TABLES_END_GPA: number;
    KERNEL_GPA: number;
    KERNEL_STACK_SIZE: number;
    /** Smallest guest memory the kernel boots in. */
    MIN_MEMORY_SIZE: number;
}>;
/** Port numbers of the guest's `out` instructions; each is one VM exit the host decodes. */
export declare const Ports: import("./struct.js").ConstantGroup<{
    /** The guest finished a mailbox request (or booted) and waits for the next one. */
    DOORBELL: number;
    /** The guest took an exception; the fault record is filled in. */
    FAULT: number;
    /** Debug console: one byte per `out`. */
    CONSOLE: number;
}>;
export declare const BOOT_INFO_MAGIC = 3554553207734818126n;
export declare const BOOT_INFO_LAYOUT_VERSION = 1;
export declare const DIRECTORY_LAYOUT_ID = 1145655857;
export declare const BootMagic: import("./struct.js").ConstantGroup<{
    INFO_MAGIC: bigint;
    INFO_LAYOUT_VERSION: number;
    DIRECTORY_LAYOUT_ID: number;
}>;
/** Published by the guest at BOOT_INFO_GPA once it is ready for requests. */
export declare const BootInfo: import("./struct.js").StructLayout<{
    magic: "u64";
    layout_version: "u32";
    directory_layout: "u32";
    /** Guest-virtual address of the cap directory header (0 until initialised). */
    directory_va: "u64";
    guest_va_base: "u64";
    memory_size: "u64";
    heap_start: "u64";
    heap_end: "u64";
    /** Guest-physical address of the live PML4 (the guest's CR3). */
    page_table_root: "u64";
    kernel_version: "u32";
    _pad0: "u32";
}>;
/**
 * The cap directory: a flat open-addressed table from cap hash to stored bytes.
 * Slot index = (first 8 bytes of the hash, little-endian) mod capacity, then linear
 * probing; capacity is a power of two. The hash is SHA-256 output, so no hasher
 * internals are part of the layout. Entries are never removed (no tombstones).
 */
export declare const DirectoryHeader: import("./struct.js").StructLayout<{
    layout_id: "u32";
    /** Number of entries in the table; a power of two. */
    capacity: "u32";
    /** Number of occupied entries. */
    count: "u32";
    _pad0: "u32";
    /** Guest-virtual address of `capacity` consecutive DirectoryEntry records. */
    entries_va: "u64";
}>;
export declare const DirectoryEntryState: import("./struct.js").ConstantGroup<{
    EMPTY: number;
    USED: number;
}>;
export declare const DirectoryEntry: import("./struct.js").StructLayout<{
    hash: ["u8", number];
    state: "u32";
    /** The cap's kind: the `Cap` union selector (Instance 0, Image 1, Data 2, CNode 3, Type 4). */
    kind: "u32";
    /** Length in bytes of the stored cap encoding. */
    len: "u64";
    /** Guest-virtual address of the stored bytes. */
    data_va: "u64";
    _pad0: "u64";
}>;
/** Filled in by the guest's exception handler before it signals NUB_PORT_FAULT. */
export declare const FaultRecord: import("./struct.js").StructLayout<{
    vector: "u64";
    error_code: "u64";
    rip: "u64";
    cs: "u64";
    rflags: "u64";
    rsp: "u64";
    cr2: "u64";
    /** Number of faults seen so far (a fault inside the handler shows up as count > 1). */
    count: "u64";
}>;
/**
 * Mailbox requests. The host writes a request into the mailbox header (and any bulk
 * input into the payload that follows it), enters the guest, and the guest answers
 * with a status and results and signals NUB_PORT_DOORBELL: one entry, one exit.
 * Later requests (batched puts, invoke, host calls) add opcodes, not new mechanisms.
 */
export declare const MailboxOp: import("./struct.js").ConstantGroup<{
    NONE: number;
    PING: number;
    /** Store one cap: args[0] = kind, args[1] = byte length; hash then bytes in the payload. */
    PUT: number;
    /** Test-only: fault on purpose; args[0] selects the scenario (see guest/src/selftest.c). */
    SELFTEST_FAULT: number;
}>;
export declare const MailboxStatus: import("./struct.js").ConstantGroup<{
    OK: number;
    BAD_OP: number;
    BAD_ARGS: number;
    NO_MEMORY: number;
    DIRECTORY_FULL: number;
}>;
export declare const Mailbox: import("./struct.js").StructLayout<{
    /** Incremented by the host for every request; echoed in `done_seq` by the guest. */
    seq: "u64";
    done_seq: "u64";
    op: "u32";
    status: "u32";
    /** Bytes of request payload that follow the header. */
    payload_len: "u64";
    args: ["u64", number];
    results: ["u64", number];
}>;
/** Everything `scripts/gen-abi.mjs` emits into the C header, in order. */
export declare const GUEST_ABI: {
    constants: (import("./struct.js").ConstantGroup<{
        PAGE_SIZE: number;
        GUEST_VA_BASE: bigint;
        GDT_GPA: number;
        BOOT_INFO_GPA: number;
        FAULT_GPA: number;
        MAILBOX_GPA: number;
        MAILBOX_PAGES: number;
        PAGE_TABLES_GPA: number;
        PAGE_TABLES_END_GPA: number;
        KERNEL_GPA: number;
        KERNEL_STACK_SIZE: number;
        /** Smallest guest memory the kernel boots in. */
        MIN_MEMORY_SIZE: number;
    }> | import("./struct.js").ConstantGroup<{
        /** The guest finished a mailbox request (or booted) and waits for the next one. */
        DOORBELL: number;
        /** The guest took an exception; the fault record is filled in. */
        FAULT: number;
        /** Debug console: one byte per `out`. */
        CONSOLE: number;
    }> | import("./struct.js").ConstantGroup<{
        INFO_MAGIC: bigint;
        INFO_LAYOUT_VERSION: number;
        DIRECTORY_LAYOUT_ID: number;
    }> | import("./struct.js").ConstantGroup<{
        EMPTY: number;
        USED: number;
    }> | import("./struct.js").ConstantGroup<{
        NONE: number;
        PING: number;
        /** Store one cap: args[0] = kind, args[1] = byte length; hash then bytes in the payload. */
        PUT: number;
        /** Test-only: fault on purpose; args[0] selects the scenario (see guest/src/selftest.c). */
        SELFTEST_FAULT: number;
    }> | import("./struct.js").ConstantGroup<{
        OK: number;
        BAD_OP: number;
        BAD_ARGS: number;
        NO_MEMORY: number;
        DIRECTORY_FULL: number;
    }>)[];
    structs: (import("./struct.js").StructLayout<{
        magic: "u64";
        layout_version: "u32";
        directory_layout: "u32";
        /** Guest-virtual address of the cap directory header (0 until initialised). */
        directory_va: "u64";
        guest_va_base: "u64";
        memory_size: "u64";
        heap_start: "u64";
        heap_end: "u64";
        /** Guest-physical address of the live PML4 (the guest's CR3). */
        page_table_root: "u64";
        kernel_version: "u32";
        _pad0: "u32";
    }> | import("./struct.js").StructLayout<{
        layout_id: "u32";
        /** Number of entries in the table; a power of two. */
        capacity: "u32";
        /** Number of occupied entries. */
        count: "u32";
        _pad0: "u32";
        /** Guest-virtual address of `capacity` consecutive DirectoryEntry records. */
        entries_va: "u64";
    }> | import("./struct.js").StructLayout<{
        hash: ["u8", number];
        state: "u32";
        /** The cap's kind: the `Cap` union selector (Instance 0, Image 1, Data 2, CNode 3, Type 4). */
        kind: "u32";
        /** Length in bytes of the stored cap encoding. */
        len: "u64";
        /** Guest-virtual address of the stored bytes. */
        data_va: "u64";
        _pad0: "u64";
    }> | import("./struct.js").StructLayout<{
        vector: "u64";
        error_code: "u64";
        rip: "u64";
        cs: "u64";
        rflags: "u64";
        rsp: "u64";
        cr2: "u64";
        /** Number of faults seen so far (a fault inside the handler shows up as count > 1). */
        count: "u64";
    }> | import("./struct.js").StructLayout<{
        /** Incremented by the host for every request; echoed in `done_seq` by the guest. */
        seq: "u64";
        done_seq: "u64";
        op: "u32";
        status: "u32";
        /** Bytes of request payload that follow the header. */
        payload_len: "u64";
        args: ["u64", number];
        results: ["u64", number];
    }>)[];
};
