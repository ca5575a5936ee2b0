/*
 * The kernel operations (ecalli 1..63) on a frame's cap table: docs/machine.md "Caps
 * at run time", the twin of lib/machine/kernel.ts. Checks run in the documented order
 * and the first failure is the status; gas is charged only once an operation is known
 * to fit, so OUT_OF_GAS leaves everything as it was.
 */
#include "internal.h"

#define ADDRESS_SPACE ((uint64_t)1 << 32)
#define BAD_REF (-1)

static inline int slot_ref(const struct pvm_frame *f, uint64_t v) {
    if (v >= 1 && v < PVM_SLOT_ARG_BASE) return (int)v;
    if (v >= PVM_SLOT_ARG_BASE && v < PVM_SLOT_ARG_BASE + (uint64_t)f->arg_slots) return (int)v;
    return BAD_REF;
}

static inline int filled(const struct pvm_frame *f, int ref) { return f->slots[ref].gen == f->gen; }
/* A pinned slot is always filled; an empty slot's flag may be left from an earlier frame. */
static inline int pinned(const struct pvm_frame *f, int ref) { return filled(f, ref) && f->slots[ref].pinned; }

static inline uint64_t data_size(const struct pvm_cap *c) { return c->len - PVM_SLOT_DATA_PAGES_OFFSET; }

/* The Data cap in the slot `v` names, or the status saying why there is none (BAD_SLOT, EMPTY, WRONG_KIND). */
static uint64_t data_in(const struct pvm_frame *f, uint64_t v, const struct pvm_cap **out) {
    int ref = slot_ref(f, v);
    if (ref == BAD_REF) return PVM_KSTATUS_BAD_SLOT;
    if (!filled(f, ref)) return PVM_KSTATUS_EMPTY;
    if (f->slots[ref].kind != PVM_CAP_DATA) return PVM_KSTATUS_WRONG_KIND;
    *out = &f->slots[ref];
    return PVM_KSTATUS_OK;
}

/* Whether every page of [addr, addr + len) (not wrapping) has `perm`. */
static int range_has(const struct pvm_memory *mem, uint64_t addr, uint64_t len, uintptr_t perm) {
    if (len == 0) return 1;
    for (uint64_t page = addr / PVM_PAGE_SIZE; page <= (addr + len - 1) / PVM_PAGE_SIZE; page++)
        if ((pvm_page_entry(mem, (uint32_t)(page * PVM_PAGE_SIZE)) & perm) != perm) return 0;
    return 1;
}

/* Copies between PVM memory at `addr` and `buf`, page by page (the range was checked). */
static void copy_range(const struct pvm_memory *mem, uint64_t addr, uint8_t *buf, uint64_t len, int to_pvm) {
    while (len) {
        uint32_t within = (uint32_t)(addr % PVM_PAGE_SIZE);
        uint64_t n = PVM_PAGE_SIZE - within < len ? PVM_PAGE_SIZE - within : len;
        uint8_t *p = pvm_host_byte(pvm_page_entry(mem, (uint32_t)addr), (uint32_t)addr);
        if (to_pvm) pvm_memcpy(p, buf, n);
        else pvm_memcpy(buf, p, n);
        addr += n, buf += n, len -= n;
    }
}

#define NO_REF (-2)

/* Slot bookkeeping of Instance caps (the kernel counts the slots holding each). */
static inline void retain(const struct pvm_frame *f, const struct pvm_cap *c) {
    if (c->kind == PVM_CAP_INSTANCE) f->instances->retain(f->ctx, c);
}
static inline void release(const struct pvm_frame *f, const struct pvm_cap *c) {
    if (c->kind == PVM_CAP_INSTANCE) f->instances->release(f->ctx, c);
}

/* CALL (ecalli 26): checked and charged here, run by the kernel; the status goes to φ7, the value to φ8. */
static uint32_t call(struct pvm_frame *f, uint64_t *phi, uint64_t *gas) {
    uint64_t cost = PVM_KGAS_CALL_FIXED, status, pages = 0, value = 0;
    int at = slot_ref(f, phi[7]);
    int cap = phi[9] == 0 ? NO_REF : slot_ref(f, phi[9]);
    const struct pvm_cap *arg = 0;
    if (at == BAD_REF || cap == BAD_REF || cap == at) status = PVM_KSTATUS_BAD_SLOT;
    else if (!filled(f, at)) status = PVM_KSTATUS_EMPTY;
    else if (f->slots[at].kind != PVM_CAP_INSTANCE) status = PVM_KSTATUS_WRONG_KIND;
    else if (cap != NO_REF && pinned(f, cap)) status = PVM_KSTATUS_PINNED;
    else if (!f->instances || f->depth >= PVM_CALL_MAX_DEPTH) status = PVM_KSTATUS_DEPTH;
    else {
        if (cap != NO_REF && filled(f, cap)) arg = &f->slots[cap];
        status = f->instances->call_check(f->ctx, &f->slots[at], phi[8], arg, &pages);
    }
    if (status == PVM_KSTATUS_OK) cost += pages * PVM_KGAS_COPY_PER_PAGE;
    if (cost > *gas) return PVM_KOUTCOME_OUT_OF_GAS;
    *gas -= cost;
    if (status == PVM_KSTATUS_OK) {
        struct pvm_cap instance = f->slots[at], result;
        int has_result = 0;
        uint64_t args[3] = {phi[10], phi[11], phi[12]};
        uint32_t r = f->instances->call(f->ctx, f, &instance, phi[8], arg, args, gas, &value, &result, &has_result);
        if (r == UINT32_MAX) return PVM_KOUTCOME_NO_MEMORY;
        status = r;
        if (status == PVM_KSTATUS_OK) {
            release(f, &f->slots[at]);
            f->slots[at] = (struct pvm_cap){.enc = instance.enc, .len = instance.len, .kind = PVM_CAP_INSTANCE, .origin = PVM_NO_ORIGIN, .gen = f->gen};
            f->held_instances = 1;
            if (cap != NO_REF) {
                if (arg) release(f, arg);
                f->slots[cap].gen = 0;
                if (has_result) f->slots[cap] = result, f->slots[cap].gen = f->gen, f->slots[cap].pinned = 0; /* the child's slot's reference moves here */
            }
        }
        phi[8] = value;
    }
    phi[7] = status;
    return PVM_KOUTCOME_CONTINUE;
}

uint32_t pvm_kernel_op(struct pvm_frame *f, struct pvm_memory *mem, uint64_t *phi, int64_t n, uint64_t *gas) {
    uint64_t a0 = phi[7], a1 = phi[8], a2 = phi[9], a3 = phi[10];
    uint64_t cost, status;
    struct pvm_cap *s, *d;
    const struct pvm_cap *c = 0;
    int src, dst;

    switch (n) {
    case PVM_KOP_COPY:
    case PVM_KOP_MOVE:
        cost = PVM_KGAS_SLOT_OP;
        src = slot_ref(f, a0), dst = slot_ref(f, a1);
        if (src == BAD_REF || dst == BAD_REF) { status = PVM_KSTATUS_BAD_SLOT; break; }
        s = &f->slots[src], d = &f->slots[dst];
        if (!filled(f, src)) { status = PVM_KSTATUS_EMPTY; break; }
        if ((n == PVM_KOP_MOVE && pinned(f, src)) || pinned(f, dst)) { status = PVM_KSTATUS_PINNED; break; }
        if (filled(f, dst)) { status = PVM_KSTATUS_OCCUPIED; break; }
        if (cost > *gas) return PVM_KOUTCOME_OUT_OF_GAS;
        *d = *s;
        d->pinned = 0;
        if (n == PVM_KOP_MOVE) s->gen = 0;
        else retain(f, d);
        status = PVM_KSTATUS_OK;
        break;
    case PVM_KOP_DROP:
        cost = PVM_KGAS_SLOT_OP;
        src = slot_ref(f, a0);
        if (src == BAD_REF) { status = PVM_KSTATUS_BAD_SLOT; break; }
        if (!filled(f, src)) { status = PVM_KSTATUS_EMPTY; break; }
        if (pinned(f, src)) { status = PVM_KSTATUS_PINNED; break; }
        if (cost > *gas) return PVM_KOUTCOME_OUT_OF_GAS;
        release(f, &f->slots[src]);
        f->slots[src].gen = 0;
        status = PVM_KSTATUS_OK;
        break;
    case PVM_KOP_DATA_SIZE:
        cost = PVM_KGAS_SLOT_OP;
        if ((status = data_in(f, a0, &c)) != PVM_KSTATUS_OK) break;
        if (cost > *gas) return PVM_KOUTCOME_OUT_OF_GAS;
        phi[8] = data_size(c);
        break;
    case PVM_KOP_READ_DATA:
        cost = PVM_KGAS_READ_FIXED;
        if ((status = data_in(f, a0, &c)) != PVM_KSTATUS_OK) break;
        if (a1 > data_size(c) || a3 > data_size(c) - a1) { status = PVM_KSTATUS_OUT_OF_RANGE; break; }
        if (a2 > ADDRESS_SPACE || a3 > ADDRESS_SPACE - a2 || !range_has(mem, a2, a3, PVM_PERM_WRITE)) { status = PVM_KSTATUS_BAD_MEMORY; break; }
        cost += (a3 + PVM_KGAS_READ_BYTES_PER_GAS - 1) / PVM_KGAS_READ_BYTES_PER_GAS;
        if (cost > *gas) return PVM_KOUTCOME_OUT_OF_GAS;
        copy_range(mem, a2, (uint8_t *)c->enc + PVM_SLOT_DATA_PAGES_OFFSET + a1, a3, 1);
        break;
    case PVM_KOP_MINT_DATA: {
        cost = PVM_KGAS_MINT_FIXED;
        dst = slot_ref(f, a0);
        if (dst == BAD_REF) { status = PVM_KSTATUS_BAD_SLOT; break; }
        d = &f->slots[dst];
        if (pinned(f, dst)) { status = PVM_KSTATUS_PINNED; break; }
        if (filled(f, dst)) { status = PVM_KSTATUS_OCCUPIED; break; }
        if (a1 > ADDRESS_SPACE || a2 > ADDRESS_SPACE - a1 || !range_has(mem, a1, a2, PVM_PERM_READ)) { status = PVM_KSTATUS_BAD_MEMORY; break; }
        uint64_t pages = (a2 + PVM_PAGE_SIZE - 1) / PVM_PAGE_SIZE;
        cost += pages * PVM_KGAS_MINT_PER_PAGE;
        if (cost > *gas) return PVM_KOUTCOME_OUT_OF_GAS;
        uint8_t *enc = f->mint(f->ctx, pages);
        if (!enc) return PVM_KOUTCOME_NO_MEMORY;
        /* The Cap union encoding of Data: its selector, then the container's one offset, then the pages. */
        uint32_t first_offset = PVM_SLOT_DATA_PAGES_OFFSET - 1;
        enc[0] = PVM_CAP_DATA;
        pvm_memcpy(enc + 1, &first_offset, sizeof first_offset);
        uint8_t *bytes = enc + PVM_SLOT_DATA_PAGES_OFFSET;
        copy_range(mem, a1, bytes, a2, 0);
        pvm_zero(bytes + a2, pages * PVM_PAGE_SIZE - a2);
        *d = (struct pvm_cap){.enc = enc, .len = PVM_SLOT_DATA_PAGES_OFFSET + pages * PVM_PAGE_SIZE, .kind = PVM_CAP_DATA, .origin = PVM_NO_ORIGIN, .gen = f->gen};
        status = PVM_KSTATUS_OK;
        break;
    }
    case PVM_KOP_DERIVE_SPAWN: {
        cost = PVM_KGAS_SPAWN_FIXED;
        src = slot_ref(f, a0), dst = slot_ref(f, a1);
        uint64_t pages = 0;
        if (src == BAD_REF || dst == BAD_REF) { status = PVM_KSTATUS_BAD_SLOT; break; }
        if (!filled(f, src)) { status = PVM_KSTATUS_EMPTY; break; }
        if (f->slots[src].kind != PVM_CAP_IMAGE) { status = PVM_KSTATUS_WRONG_KIND; break; }
        if (pinned(f, dst)) { status = PVM_KSTATUS_PINNED; break; }
        if (filled(f, dst)) { status = PVM_KSTATUS_OCCUPIED; break; }
        if (!f->instances) { status = PVM_KSTATUS_NOT_LOADED; break; }
        if ((status = f->instances->spawn_check(f->ctx, &f->slots[src], &pages)) != PVM_KSTATUS_OK) break;
        cost += pages * PVM_KGAS_COPY_PER_PAGE;
        if (cost > *gas) return PVM_KOUTCOME_OUT_OF_GAS;
        struct pvm_cap made = {0};
        if (!f->instances->spawn(f->ctx, &f->slots[src], &made)) return PVM_KOUTCOME_NO_MEMORY;
        made.origin = PVM_NO_ORIGIN, made.gen = f->gen, made.pinned = 0;
        f->slots[dst] = made;
        f->held_instances = 1;
        break;
    }
    case PVM_KOP_CALL:
        return call(f, phi, gas);
    default:
        return PVM_KOUTCOME_PANIC;
    }
    if (cost > *gas) return PVM_KOUTCOME_OUT_OF_GAS;
    *gas -= cost;
    phi[7] = status;
    return PVM_KOUTCOME_CONTINUE;
}
