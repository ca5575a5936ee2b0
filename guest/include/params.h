/*
 * The guest kernel's tunables, in one place. Facts the host shares (the memory map,
 * NUB_MAX_IMAGES, the mailbox's size, the cap encodings) are in the generated nub_abi.h.
 */
#ifndef NUB_PARAMS_H
#define NUB_PARAMS_H

/* The cap directory gets 1/DIRECTORY_MEMORY_SHARE of guest memory, rounded down to a power-of-two capacity within these bounds. */
#define DIRECTORY_MEMORY_SHARE 16
#define DIRECTORY_MIN_CAPACITY 64u
#define DIRECTORY_MAX_CAPACITY (1ull << 31)
/* Load is capped at DIRECTORY_LOAD_NUM/DIRECTORY_LOAD_DEN, so every probe sequence ends at an empty slot. */
#define DIRECTORY_LOAD_NUM 3
#define DIRECTORY_LOAD_DEN 4

#endif /* NUB_PARAMS_H */
