/*
 * A buffer in, a buffer out, through caps. Endpoint 1 takes argument cap 0 (the
 * input; its first n bytes count), replies with their FNV-1a-64 checksum and returns
 * them reversed as a new Data cap in argument slot 0. Endpoint 2 makes its own input
 * (n bytes of a pattern, minted into root slot 10) and does the same, so it also runs
 * where no cap can be passed in (under qemu). A failing kernel operation replies
 * UINT64_MAX - status.
 */
#include "nub.h"

#define MAX_BYTES (256 * 1024)
#define SCRATCH_SLOT 10

static uint8_t buf[MAX_BYTES];

static uint64_t checksum_and_reverse(uint64_t slot, uint64_t n) {
  uint64_t size, status;
  if ((status = nub_data_size(slot, &size)) != NUB_OK) return UINT64_MAX - status;
  if (n > size || n > MAX_BYTES) return UINT64_MAX - PVM_KSTATUS_OUT_OF_RANGE;
  if ((status = nub_data_read(slot, 0, buf, n)) != NUB_OK) return UINT64_MAX - status;
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint64_t i = 0; i < n; i++) h = (h ^ buf[i]) * 0x100000001b3ull;
  for (uint64_t i = 0, j = n; i + 1 < j; i++, j--) {
    uint8_t t = buf[i];
    buf[i] = buf[j - 1];
    buf[j - 1] = t;
  }
  nub_drop(NUB_ARG(0)); /* the input, if it was there: the slot holds the result */
  if ((status = nub_data_mint(NUB_ARG(0), buf, n)) != NUB_OK) return UINT64_MAX - status;
  return h;
}

uint64_t transform(uint64_t n) { return checksum_and_reverse(NUB_ARG(0), n); }

uint64_t transform_pattern(uint64_t n) {
  if (n > MAX_BYTES) return UINT64_MAX - PVM_KSTATUS_OUT_OF_RANGE;
  for (uint64_t i = 0; i < n; i++) buf[i] = (uint8_t)(i * 131 + 7);
  uint64_t status = nub_data_mint(SCRATCH_SLOT, buf, n);
  if (status != NUB_OK) return UINT64_MAX - status;
  for (uint64_t i = 0; i < n; i++) buf[i] = 0; /* what comes back must come from the cap */
  return checksum_and_reverse(SCRATCH_SLOT, n);
}

NUB_ENDPOINT_CAPS(1, transform, 1, 1);
NUB_ENDPOINT_CAPS(2, transform_pattern, 1, 1);
