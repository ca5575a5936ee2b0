/*
 * The call loop. `out NUB_PORT_DOORBELL` is the guest's only way to say "done" (or,
 * the first time, "booted"): the host sees one VM exit, writes the next request into
 * the mailbox and re-enters, and execution continues right after the `out`.
 */
#include "kernel.h"

static uint32_t handle_put(volatile struct nub_mailbox *mb, const uint8_t *payload) {
    uint64_t kind = mb->args[0], len = mb->args[1], payload_len = mb->payload_len;
    if (kind > UINT32_MAX || payload_len > NUB_MAILBOX_PAYLOAD_CAPACITY || len != payload_len - NUB_HASH_BYTES ||
        payload_len < NUB_HASH_BYTES) {
        return NUB_STATUS_BAD_ARGS;
    }
    bool inserted;
    uint32_t status = directory_put(payload, (uint32_t)kind, payload + NUB_HASH_BYTES, len, &inserted);
    mb->results[0] = inserted;
    return status;
}

/* Reserves room for each cap; the host writes the bytes after this request (see NUB_OP_PUT_CAPS). */
static uint32_t handle_put_caps(volatile struct nub_mailbox *mb, uint8_t *payload) {
    uint64_t count = mb->args[0];
    if (count > NUB_MAILBOX_PAYLOAD_CAPACITY / sizeof(struct nub_cap_put) || mb->payload_len != count * sizeof(struct nub_cap_put)) {
        return NUB_STATUS_BAD_ARGS;
    }
    struct nub_cap_put *records = (struct nub_cap_put *)payload;
    uint64_t inserted = 0;
    for (uint64_t i = 0; i < count; i++) records[i].data_va = 0;
    for (uint64_t i = 0; i < count; i++) {
        struct nub_cap_put *r = &records[i];
        void *room;
        uint32_t status = directory_reserve(r->hash, r->kind, r->len, r->page_offset, &room);
        if (status != NUB_STATUS_OK) {
            mb->results[0] = inserted;
            return status; /* the records before this one are stored: data_va tells the host which */
        }
        r->data_va = VA(room);
        inserted += room != NULL;
    }
    mb->results[0] = inserted;
    return NUB_STATUS_OK;
}

static uint32_t handle(volatile struct nub_mailbox *mb, uint32_t op, uint8_t *payload) {
    switch (op) {
    case NUB_OP_PUT:
        return handle_put(mb, payload);
    case NUB_OP_PUT_CAPS:
        return handle_put_caps(mb, payload);
    case NUB_OP_PREPARE:
        return handle_prepare(mb, payload);
    case NUB_OP_INVOKE:
        return handle_invoke(mb, payload);
    case NUB_OP_SELFTEST_FAULT:
        return selftest_fault(mb->args[0]);
    default:
        return NUB_STATUS_BAD_OP;
    }
}

/* Serves the request the host has just written. */
static inline void serve(void) {
    volatile struct nub_mailbox *mb = PHYS(NUB_MAILBOX_GPA);
    uint8_t *payload = (uint8_t *)PHYS(NUB_MAILBOX_GPA) + sizeof(struct nub_mailbox);
    /*
     * The host writes status = OK with every request, so a request that succeeds
     * does not write it: PING, the round-trip benchmark, is then a handful of
     * instructions (every guest instruction counts under nested virtualisation).
     */
    uint64_t seq = mb->seq;
    uint32_t op = mb->op;
    if (op != NUB_OP_PING) {
        uint32_t status = handle(mb, op, payload);
        if (status != NUB_STATUS_OK) mb->status = status;
    }
    compiler_barrier();
    mb->done_seq = seq; /* last: the host trusts results only when done_seq matches */
}

static inline uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

/*
 * Polling mode (mb->idle_spin_tsc != 0): wait for the host's next request by watching
 * `seq`, for at most that many TSC ticks. True when one arrived: serve it without an exit.
 * The last look after the budget runs out means a request written just before the
 * doorbell is never missed (and a guest resumed from an old snapshot serves at once).
 */
static bool await_request(void) {
    volatile struct nub_mailbox *mb = PHYS(NUB_MAILBOX_GPA);
    uint64_t budget = mb->idle_spin_tsc;
    if (budget == 0) return false;
    uint64_t start = rdtsc();
    while (rdtsc() - start < budget) {
        if (mb->seq != mb->done_seq) return true;
        __builtin_ia32_pause();
    }
    return mb->seq != mb->done_seq;
}

/* The doorbell says "done, and idle"; the host enters again once it has written a request. */
_Noreturn void call_loop(void) {
    for (;;) {
        signal_host(NUB_PORT_DOORBELL);
        do serve();
        while (await_request());
    }
}

/*
 * Entered from nub_resume (entry.S) on a fresh stack when the host stopped an INVOKE
 * part-way (timeout or cancel) and wrote its next request. An INVOKE changes nothing
 * the next one needs (the host rewrites the writable pages before each), so just
 * serve and carry on.
 */
_Noreturn void call_loop_resume(void) {
    do serve();
    while (await_request());
    call_loop();
}
