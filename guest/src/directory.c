/*
 * The cap directory: the flat table the host reads directly (layout in
 * lib/abi/guest-abi.ts). Slot = first 8 hash bytes (little-endian) mod capacity,
 * then linear probing. Load is capped at 3/4 so every probe sequence ends at an
 * empty slot.
 */
#include "kernel.h"

/* The table gets 1/16 of guest memory, rounded down to a power-of-two capacity. */
#define DIRECTORY_MEMORY_SHARE 16
#define MIN_CAPACITY 64u
#define MAX_CAPACITY (1ull << 31)

static struct nub_directory directory;
static struct nub_directory_entry *entries;

/* The slot a hash starts probing at: its first 8 bytes, little-endian (x86 is). */
static uint64_t hash_slot_key(const uint8_t *hash) {
    uint64_t v;
    memcpy(&v, hash, sizeof v);
    return v;
}

bool directory_init(uint64_t memory_size) {
    uint64_t budget = memory_size / DIRECTORY_MEMORY_SHARE / sizeof(struct nub_directory_entry);
    uint32_t capacity = MIN_CAPACITY;
    if (budget > MIN_CAPACITY) capacity = 1u << (63 - __builtin_clzll(budget < MAX_CAPACITY ? budget : MAX_CAPACITY));
    entries = heap_alloc((uint64_t)capacity * sizeof(struct nub_directory_entry), NUB_PAGE_SIZE);
    if (entries == NULL) return false;
    directory = (struct nub_directory){
        .layout_id = NUB_BOOT_DIRECTORY_LAYOUT_ID,
        .capacity = capacity,
        .count = 0,
        .entries_va = VA(entries),
    };
    return true;
}

struct nub_directory *directory_header(void) { return &directory; }

/* Copies the bytes into the heap; page-sized buffers stay page-aligned (SPEC section 7). */
static void *store_bytes(const uint8_t *bytes, uint64_t len) {
    uint64_t align = (len != 0 && len % NUB_PAGE_SIZE == 0) ? NUB_PAGE_SIZE : 8;
    void *copy = heap_alloc(len, align);
    if (copy != NULL) memcpy(copy, bytes, len);
    return copy;
}

uint32_t directory_put(const uint8_t hash[32], uint32_t kind, const uint8_t *bytes, uint64_t len, bool *inserted) {
    uint32_t mask = directory.capacity - 1;
    *inserted = false;
    for (uint32_t i = (uint32_t)(hash_slot_key(hash) & mask);; i = (i + 1) & mask) {
        struct nub_directory_entry *e = &entries[i];
        if (e->state == NUB_DIR_ENTRY_USED) {
            if (memcmp(e->hash, hash, 32) == 0) return NUB_STATUS_OK; /* same hash, same cap */
            continue;
        }
        if ((uint64_t)(directory.count + 1) * 4 > (uint64_t)directory.capacity * 3) return NUB_STATUS_DIRECTORY_FULL;
        void *copy = store_bytes(bytes, len);
        if (copy == NULL) return NUB_STATUS_NO_MEMORY;
        memcpy(e->hash, hash, 32);
        e->kind = kind;
        e->len = len;
        e->data_va = VA(copy);
        e->state = NUB_DIR_ENTRY_USED;
        directory.count++;
        *inserted = true;
        return NUB_STATUS_OK;
    }
}
