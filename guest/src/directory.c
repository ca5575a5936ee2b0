/*
 * The cap directory: the flat table the host reads directly (layout in
 * lib/abi/guest-abi.ts). Slot = first 8 hash bytes (little-endian) mod capacity,
 * then linear probing. Its size and load cap are in params.h.
 */
#include "kernel.h"

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
    uint32_t capacity = DIRECTORY_MIN_CAPACITY;
    if (budget > DIRECTORY_MIN_CAPACITY) capacity = 1u << (63 - __builtin_clzll(budget < DIRECTORY_MAX_CAPACITY ? budget : DIRECTORY_MAX_CAPACITY));
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

/*
 * Finds the slot for `hash`: its entry when present (*found = true), else the empty
 * slot probing ends at. Never loops: the load cap keeps an empty slot in every table.
 */
static struct nub_directory_entry *probe(const uint8_t hash[NUB_HASH_BYTES], bool *found) {
    uint32_t mask = directory.capacity - 1;
    for (uint32_t i = (uint32_t)(hash_slot_key(hash) & mask);; i = (i + 1) & mask) {
        struct nub_directory_entry *e = &entries[i];
        if (e->state != NUB_DIR_ENTRY_USED) {
            *found = false;
            return e;
        }
        if (memcmp(e->hash, hash, NUB_HASH_BYTES) == 0) {
            *found = true;
            return e;
        }
    }
}

const struct nub_directory_entry *directory_find(const uint8_t hash[NUB_HASH_BYTES]) {
    bool found;
    const struct nub_directory_entry *e = probe(hash, &found);
    return found ? e : NULL;
}

/*
 * Inserts `hash` with room for `len` bytes and returns that room in *bytes (NULL when
 * the hash was already present: same hash, same cap, the first copy stays). The caller
 * fills the bytes before anything reads them. With `page_offset` != NUB_CAP_PUT_NO_PAGE_OFFSET,
 * byte `page_offset` of the room starts a page (SPEC section 7: pinned pages map without
 * copying); whole-page caps are page-aligned either way.
 */
uint32_t directory_reserve(const uint8_t hash[NUB_HASH_BYTES], uint32_t kind, uint64_t len, uint32_t page_offset, void **bytes) {
    *bytes = NULL;
    bool found;
    struct nub_directory_entry *e = probe(hash, &found);
    if (found) return NUB_STATUS_OK;
    if ((uint64_t)(directory.count + 1) * DIRECTORY_LOAD_DEN > (uint64_t)directory.capacity * DIRECTORY_LOAD_NUM) return NUB_STATUS_DIRECTORY_FULL;
    void *room;
    if (page_offset != NUB_CAP_PUT_NO_PAGE_OFFSET) room = heap_alloc_offset(len, NUB_PAGE_SIZE, page_offset);
    else room = heap_alloc(len, (len != 0 && len % NUB_PAGE_SIZE == 0) ? NUB_PAGE_SIZE : 8);
    if (room == NULL) return NUB_STATUS_NO_MEMORY;
    memcpy(e->hash, hash, NUB_HASH_BYTES);
    e->kind = kind;
    e->len = len;
    e->data_va = VA(room);
    e->state = NUB_DIR_ENTRY_USED;
    directory.count++;
    *bytes = room;
    return NUB_STATUS_OK;
}

uint32_t directory_put(const uint8_t hash[NUB_HASH_BYTES], uint32_t kind, const uint8_t *bytes, uint64_t len, bool *inserted) {
    void *room;
    uint32_t status = directory_reserve(hash, kind, len, NUB_CAP_PUT_NO_PAGE_OFFSET, &room);
    *inserted = room != NULL;
    if (room != NULL) memcpy(room, bytes, len);
    return status;
}
