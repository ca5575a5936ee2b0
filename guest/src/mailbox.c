/*
 * The call loop. `out NUB_PORT_DOORBELL` is the guest's only way to say "done" (or,
 * the first time, "booted"): the host sees one VM exit, writes the next request into
 * the mailbox and re-enters, and execution continues right after the `out`.
 */
#include "kernel.h"

#define MAILBOX_PAYLOAD_CAPACITY (NUB_MAILBOX_PAGES * NUB_PAGE_SIZE - sizeof(struct nub_mailbox))
#define HASH_BYTES 32

static uint32_t handle_put(volatile struct nub_mailbox *mb, const uint8_t *payload) {
    uint64_t kind = mb->args[0], len = mb->args[1], payload_len = mb->payload_len;
    if (kind > UINT32_MAX || payload_len > MAILBOX_PAYLOAD_CAPACITY || len != payload_len - HASH_BYTES ||
        payload_len < HASH_BYTES) {
        return NUB_STATUS_BAD_ARGS;
    }
    bool inserted;
    uint32_t status = directory_put(payload, (uint32_t)kind, payload + HASH_BYTES, len, &inserted);
    mb->results[0] = inserted;
    return status;
}

static uint32_t handle(volatile struct nub_mailbox *mb, uint32_t op, const uint8_t *payload) {
    switch (op) {
    case NUB_OP_PUT:
        return handle_put(mb, payload);
    case NUB_OP_SELFTEST_FAULT:
        return selftest_fault(mb->args[0]);
    default:
        return NUB_STATUS_BAD_OP;
    }
}

_Noreturn void call_loop(void) {
    volatile struct nub_mailbox *mb = PHYS(NUB_MAILBOX_GPA);
    const uint8_t *payload = (const uint8_t *)PHYS(NUB_MAILBOX_GPA) + sizeof(struct nub_mailbox);
    for (;;) {
        signal_host(NUB_PORT_DOORBELL);
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
}
