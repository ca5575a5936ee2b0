/*
 * Host-native driver of the PVM2 engine, for differential tests and benchmarks.
 * Reads one request (layout: lib/abi/engine-harness-abi.ts) from the file named by
 * argv[1], or stdin, runs it and writes the response to stdout. Malformed input:
 * a message on stderr and exit status 2.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "../pvm.h"
#include "harness_abi.h"

static void fail(const char *what) {
    fprintf(stderr, "engine-harness: %s\n", what);
    exit(2);
}

static void *host_alloc(void *ctx, size_t size, size_t align) {
    (void)ctx;
    void *p = 0;
    if (align < sizeof(void *)) align = sizeof(void *);
    return posix_memalign(&p, align, size ? size : 1) == 0 ? p : 0;
}

static void host_free(void *ctx, void *ptr, size_t size) {
    (void)ctx;
    (void)size;
    free(ptr);
}

/* The recompiler's arena: fresh pages, written, then read+execute only (W^X). */
static void *arena_alloc(void *ctx, size_t size, void **exec) {
    (void)ctx;
    void *p = mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 0;
    *exec = p;
    return p;
}

static int arena_seal(void *ctx, void *p, size_t used) {
    (void)ctx;
    return mprotect(p, used, PROT_READ | PROT_EXEC);
}

static void arena_free(void *ctx, void *p, size_t size) {
    (void)ctx;
    munmap(p, size);
}

static uint8_t *read_all(FILE *in, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) fail("out of memory");
        n += fread(buf + n, 1, cap - n, in);
        if (n < cap) break;
        buf = realloc(buf, cap *= 2);
    }
    if (ferror(in)) fail("cannot read the request");
    *len = n;
    return buf;
}

/* A cursor over the request bytes. */
struct reader {
    const uint8_t *p;
    size_t left;
};

static const uint8_t *take(struct reader *r, size_t n) {
    if (n > r->left) fail("request is truncated");
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

/* CPU time of this thread: on a shared machine, preemption does not count. */
static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
    FILE *in = stdin;
    if (argc > 1 && !(in = fopen(argv[1], "rb"))) fail("cannot open the request file");
    size_t len;
    uint8_t *bytes = read_all(in, &len);
    struct reader rd = {bytes, len};

    struct pvm_harness_request req;
    memcpy(&req, take(&rd, sizeof req), sizeof req);
    if (req.magic != PVM_HARNESS_REQUEST_MAGIC) fail("bad request magic");
    const uint8_t *code = take(&rd, req.code_len);

    struct pvm_allocator alloc = {host_alloc, host_free, 0};
    struct pvm_program *prog;
    uint64_t t0 = now_ns();
    if (pvm_prepare(&alloc, code, req.code_len, &prog)) fail("pvm_prepare failed");
    uint64_t prepare_ns = now_ns() - t0, compile_ns = 0;
    if (req.engine > PVM_ENGINE_RECOMPILER) fail("bad engine");
    if (req.engine == PVM_ENGINE_RECOMPILER) {
        struct pvm_code_arena arena = {arena_alloc, arena_seal, arena_free, 0, (size_t)1 << 30};
        t0 = now_ns();
        if (pvm_compile(prog, &arena)) fail("pvm_compile failed");
        compile_ns = now_ns() - t0;
    }
    struct pvm_memory *mem;
    if (pvm_memory_create(&alloc, prog, &mem)) fail("pvm_memory_create failed");

    struct pvm_harness_mapping *maps = calloc(req.mapping_count ? req.mapping_count : 1, sizeof *maps);
    uint8_t **backing = calloc(req.mapping_count ? req.mapping_count : 1, sizeof *backing);
    if (!maps || !backing) fail("out of memory");
    for (uint32_t m = 0; m < req.mapping_count; m++) {
        memcpy(&maps[m], take(&rd, sizeof maps[m]), sizeof maps[m]);
        struct pvm_harness_mapping *map = &maps[m];
        if (map->data_len > map->size) fail("mapping data is longer than the mapping");
        if (!(backing[m] = host_alloc(0, map->size, PVM_PAGE_SIZE))) fail("out of memory");
        memset(backing[m], 0, map->size);
        memcpy(backing[m], take(&rd, map->data_len), map->data_len);
        uint32_t pages = map->size / PVM_PAGE_SIZE;
        uint8_t **page_list = malloc((pages ? pages : 1) * sizeof *page_list);
        if (!page_list) fail("out of memory");
        for (uint32_t i = 0; i < pages; i++) page_list[i] = backing[m] + (size_t)i * PVM_PAGE_SIZE;
        /* An empty mapping maps nothing (as in lib/machine). */
        if (pages && pvm_map(mem, map->start, map->size, page_list, map->writable != 0)) fail("pvm_map rejected a mapping");
        free(page_list);
    }
    if (rd.left) fail("trailing bytes after the request");

    /* A fresh invocation, as the kernel starts one. */
    struct pvm_state st = {.gas = req.gas};
    memcpy(st.regs, req.regs, sizeof st.regs);
    t0 = now_ns();
    pvm_enter(prog, mem, &st, req.entry, (enum pvm_engine)req.engine, 0);
    uint64_t run_ns = now_ns() - t0;

    struct pvm_harness_response res = {
        .magic = PVM_HARNESS_RESPONSE_MAGIC, .exit = st.exit, .pc = st.pc, .exit_arg = st.exit_arg, .gas = st.gas,
        .run_ns = run_ns, .prepare_ns = prepare_ns, .compile_ns = compile_ns, .code_bytes = pvm_compiled_size(prog),
        .instructions = st.instructions,
    };
    memcpy(res.regs, st.regs, sizeof res.regs);
    fwrite(&res, sizeof res, 1, stdout);
    for (uint32_t m = 0; m < req.mapping_count; m++)
        if (maps[m].writable) fwrite(backing[m], 1, maps[m].size, stdout);
    if (fflush(stdout)) fail("cannot write the response");

    pvm_memory_free(mem);
    pvm_program_free(prog);
    for (uint32_t m = 0; m < req.mapping_count; m++) free(backing[m]);
    free(backing);
    free(maps);
    free(bytes);
    return 0;
}
