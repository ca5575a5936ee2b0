/*
 * State that lives in an Instance's memory (sandbox.spawn, then invoke the Instance
 * hash): a running total and a small key-value store. Invoked as an image, every
 * call starts from the initial state; invoked as an Instance, each call sees what
 * the calls before it left.
 */
#include "nub.h"

#define KV_SLOTS 64

static uint64_t total, calls;
static struct { uint64_t key, value, used; } kv[KV_SLOTS];

/* 1: total += k; replies the new total. */
uint64_t add(uint64_t k) {
  calls++;
  return total += k;
}

/* 2: how many calls to add there were. */
uint64_t count(void) { return calls; }

/* 3: kv[key] = value (open addressing); replies 1, or 0 when the store is full. */
uint64_t put(uint64_t key, uint64_t value) {
  for (uint64_t i = 0; i < KV_SLOTS; i++) {
    uint64_t at = (key + i) % KV_SLOTS;
    if (!kv[at].used || kv[at].key == key) {
      kv[at].key = key, kv[at].value = value, kv[at].used = 1;
      return 1;
    }
  }
  return 0;
}

/* 4: kv[key], or 0 when absent. */
uint64_t get(uint64_t key) {
  for (uint64_t i = 0; i < KV_SLOTS; i++) {
    uint64_t at = (key + i) % KV_SLOTS;
    if (!kv[at].used) return 0;
    if (kv[at].key == key) return kv[at].value;
  }
  return 0;
}

NUB_ENDPOINT(1, add, 1);
NUB_ENDPOINT(2, count, 0);
NUB_ENDPOINT(3, put, 2);
NUB_ENDPOINT(4, get, 1);
