/*
 * A parent that keeps a child Instance (kernel operations DERIVE_SPAWN and CALL).
 * Root slot 4 is pinned to the `counter` image (examples/counter; the build pins it,
 * see expected.json "pinImages").
 *
 * 1 (n, k): spawns a counter into slot 5, calls its endpoint 1 (total += k) n times,
 *   replies the last total and returns the Instance as argument cap 0: the host can
 *   invoke it later and see the state the n calls left.
 * 2 (level): calls itself one frame deeper through its own Image cap, passed as
 *   argument cap 0, until CALL says DEPTH; replies the deepest level reached.
 * A failing kernel operation replies UINT64_MAX - status (a child's exit: - 100 - exit).
 */
#include "nub.h"

#define COUNTER_IMAGE 4
#define CHILD 5
#define SELF 6

static uint64_t failed(uint64_t status, uint64_t reply) {
  return status == PVM_KSTATUS_CHILD_EXIT ? UINT64_MAX - 100 - reply : UINT64_MAX - status;
}

uint64_t count_in_child(uint64_t n, uint64_t k) {
  uint64_t status, reply = 0;
  if ((status = nub_spawn(COUNTER_IMAGE, CHILD)) != NUB_OK) return UINT64_MAX - status;
  for (uint64_t i = 0; i < n; i++)
    if ((status = nub_call(CHILD, 1, 0, k, 0, 0, &reply)) != NUB_OK) return failed(status, reply);
  nub_drop(NUB_ARG(0));
  if ((status = nub_move(CHILD, NUB_ARG(0))) != NUB_OK) return UINT64_MAX - status;
  return reply;
}

uint64_t recurse(uint64_t level) {
  uint64_t status, reply = 0;
  if ((status = nub_copy(NUB_ARG(0), SELF)) != NUB_OK) return UINT64_MAX - status;
  if ((status = nub_spawn(SELF, CHILD)) != NUB_OK) return UINT64_MAX - status;
  status = nub_call(CHILD, 2, SELF, level + 1, 0, 0, &reply);
  if (status == PVM_KSTATUS_DEPTH) return level;
  return status == NUB_OK ? reply : failed(status, reply);
}

NUB_ENDPOINT_CAPS(1, count_in_child, 2, 1);
NUB_ENDPOINT_CAPS(2, recurse, 1, 1);
