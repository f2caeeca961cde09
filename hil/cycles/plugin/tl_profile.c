/* tinylab's execution profiler: a QEMU TCG plugin (QEMU 7.x plugin API, version 1).
 *
 * It counts, inside each timed window only, how often every translated block ran, which block
 * ran next (so that the host knows each branch's taken and not-taken counts), and for every load
 * or store instruction how many of its accesses went to each memory region. A window opens at one
 * entry to the marker function (the harness's timer_now) and closes at the next one.
 *
 * Arguments (-plugin tl_profile.so,out=PATH,marker=ADDR,flash=LO:HI,ram=LO:HI,stack=LO:HI):
 * addresses in hexadecimal; `stack` lies inside `ram` and is counted apart from it. Optional
 * dcache=SIZE:WAYS:LINE:MASK and icache=... simulate an LRU cache over the regions in MASK (a bit
 * per region: 1 flash, 2 ram, 4 stack): data accesses, and each block's instruction lines.
 *
 * Output, one record per line: t and i as a block is translated, w, b, e and m at each window's
 * end, `end` at exit:
 *   w K INSNS        window K ran INSNS instructions
 *   b ID COUNT       block ID ran COUNT times in that window
 *   e ID NEXT COUNT  block NEXT ran right after block ID, COUNT times
 *   m PC F R S O B   the load/store at PC: accesses to flash, ram (not stack), stack, other, and how
 *                    many went to the other 32-bit bank (address bit 2) than the access before
 *   c d|i H M ...    the data or instruction cache: hits and misses for each of the four regions
 *   t ID PC N        block ID starts at PC and has N instructions
 *   i ID PC SIZE     the instructions of block ID, in order
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_qemu_plugin_api.h"

int qemu_plugin_version = TL_QEMU_PLUGIN_VERSION;

enum { REGION_FLASH, REGION_RAM, REGION_STACK, REGION_OTHER, REGIONS };
enum { EDGE_SLOTS = 4 };

struct edge {
    struct block *next;
    uint64_t count;
};

struct access {
    uint64_t pc;
    uint64_t count[REGIONS];
    uint64_t bank_changes; /* accesses to the other 32-bit bank (address bit 2) than the access before */
};

struct block {
    uint32_t id;
    uint64_t pc;
    uint32_t n_insns;
    uint64_t count;
    struct edge edges[EDGE_SLOTS];
    struct edge *more;   /* successors beyond EDGE_SLOTS */
    uint32_t n_more;
    uint64_t *insn_pcs;
    uint32_t *insn_sizes;
    struct access *accesses; /* one per instruction that touches memory */
    uint32_t n_accesses;
    struct block *next_block; /* the list of all blocks */
};

struct range {
    uint64_t lo, hi;
};

/* A set-associative cache with LRU replacement that allocates on every access to the regions in
 * its mask; it counts hits and misses per region. */
struct cache {
    uint32_t sets, ways, line_shift, region_mask;
    uint64_t *tags;     /* sets * ways; 0 is empty (tags are stored plus one) */
    uint64_t *ages;     /* last use, for LRU */
    uint64_t clock;
    uint64_t hits[REGIONS], misses[REGIONS];
};

static FILE *out;
static uint64_t marker;
static struct range flash, ram, stack;
static struct cache dcache, icache;
static bool in_window;
static uint32_t window_index;
static uint64_t window_insns;
static struct block *blocks, *previous;
static uint32_t block_count;
static uint64_t last_bank;

static bool parse_range(const char *text, struct range *range)
{
    char *end;
    range->lo = strtoull(text, &end, 16);
    if (*end != ':') {
        return false;
    }
    range->hi = strtoull(end + 1, &end, 16);
    return *end == '\0' && range->hi > range->lo;
}

static bool inside(const struct range *range, uint64_t address)
{
    return address >= range->lo && address < range->hi;
}

static int region_of(uint64_t address)
{
    if (inside(&stack, address)) {
        return REGION_STACK;
    }
    if (inside(&ram, address)) {
        return REGION_RAM;
    }
    if (inside(&flash, address)) {
        return REGION_FLASH;
    }
    return REGION_OTHER;
}

/* SIZE:WAYS:LINE:MASK, all decimal except MASK (a bit per region: 1 flash, 2 ram, 4 stack). */
static bool parse_cache(const char *text, struct cache *cache)
{
    unsigned long size, ways, line, mask;
    if (sscanf(text, "%lu:%lu:%lu:%lx", &size, &ways, &line, &mask) != 4 || ways == 0 || line == 0 ||
        (line & (line - 1)) != 0 || size % (ways * line) != 0) {
        return false;
    }
    cache->sets = (uint32_t)(size / (ways * line));
    cache->ways = (uint32_t)ways;
    cache->line_shift = (uint32_t)__builtin_ctzl(line);
    cache->region_mask = (uint32_t)mask;
    cache->tags = calloc((size_t)cache->sets * ways, sizeof *cache->tags);
    cache->ages = calloc((size_t)cache->sets * ways, sizeof *cache->ages);
    return cache->tags != NULL && cache->ages != NULL;
}

static void cache_touch(struct cache *cache, uint64_t address, int region)
{
    if (cache->sets == 0 || !(cache->region_mask & (1u << region))) {
        return;
    }
    uint64_t line = address >> cache->line_shift;
    uint32_t set = (uint32_t)(line % cache->sets);
    uint64_t *tags = &cache->tags[(size_t)set * cache->ways];
    uint64_t *ages = &cache->ages[(size_t)set * cache->ways];
    uint32_t oldest = 0;
    cache->clock++;
    for (uint32_t way = 0; way < cache->ways; ++way) {
        if (tags[way] == line + 1) {
            ages[way] = cache->clock;
            cache->hits[region]++;
            return;
        }
        if (ages[way] < ages[oldest]) {
            oldest = way;
        }
    }
    tags[oldest] = line + 1;
    ages[oldest] = cache->clock;
    cache->misses[region]++;
}

static void write_cache(const char *name, struct cache *cache)
{
    if (cache->sets == 0) {
        return;
    }
    fprintf(out, "c %s", name);
    for (int r = 0; r < REGIONS; ++r) {
        fprintf(out, " %" PRIu64 " %" PRIu64, cache->hits[r], cache->misses[r]);
        cache->hits[r] = cache->misses[r] = 0;
    }
    fputc('\n', out);
}

static void count_edge(struct block *from, struct block *to)
{
    for (uint32_t i = 0; i < EDGE_SLOTS; ++i) {
        if (from->edges[i].next == to) {
            from->edges[i].count++;
            return;
        }
        if (from->edges[i].next == NULL) {
            from->edges[i].next = to;
            from->edges[i].count = 1;
            return;
        }
    }
    for (uint32_t i = 0; i < from->n_more; ++i) {
        if (from->more[i].next == to) {
            from->more[i].count++;
            return;
        }
    }
    from->more = realloc(from->more, (from->n_more + 1) * sizeof *from->more);
    if (from->more == NULL) {
        abort();
    }
    from->more[from->n_more].next = to;
    from->more[from->n_more].count = 1;
    from->n_more++;
}

static void write_edges(const struct edge *edges, uint32_t n, const struct block *from)
{
    for (uint32_t i = 0; i < n; ++i) {
        if (edges[i].next != NULL && edges[i].count != 0) {
            fprintf(out, "e %" PRIu32 " %" PRIu32 " %" PRIu64 "\n", from->id, edges[i].next->id, edges[i].count);
        }
    }
}

static void close_window(void)
{
    fprintf(out, "w %" PRIu32 " %" PRIu64 "\n", window_index, window_insns);
    write_cache("d", &dcache);
    write_cache("i", &icache);
    for (struct block *b = blocks; b != NULL; b = b->next_block) {
        if (b->count == 0) {
            continue;
        }
        fprintf(out, "b %" PRIu32 " %" PRIu64 "\n", b->id, b->count);
        write_edges(b->edges, EDGE_SLOTS, b);
        write_edges(b->more, b->n_more, b);
        for (uint32_t i = 0; i < b->n_accesses; ++i) {
            const struct access *a = &b->accesses[i];
            if (a->count[0] | a->count[1] | a->count[2] | a->count[3]) {
                fprintf(out, "m %" PRIx64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", a->pc,
                        a->count[0], a->count[1], a->count[2], a->count[3], a->bank_changes);
            }
        }
        b->count = 0;
        memset(b->edges, 0, sizeof b->edges);
        b->n_more = 0;
        for (uint32_t i = 0; i < b->n_accesses; ++i) {
            memset(b->accesses[i].count, 0, sizeof b->accesses[i].count);
            b->accesses[i].bank_changes = 0;
        }
    }
    window_index++;
    window_insns = 0;
    fflush(out);
}

static void on_marker(unsigned int vcpu, void *userdata)
{
    (void)vcpu;
    (void)userdata;
    if (in_window) {
        close_window();
    }
    in_window = !in_window;
    previous = NULL;
}

static void on_block(unsigned int vcpu, void *userdata)
{
    struct block *b = userdata;
    (void)vcpu;
    if (!in_window) {
        return;
    }
    b->count++;
    window_insns += b->n_insns;
    if (icache.sets != 0) {
        int region = region_of(b->pc);
        uint64_t end = b->insn_pcs[b->n_insns - 1] + b->insn_sizes[b->n_insns - 1];
        for (uint64_t line = b->pc >> icache.line_shift; line <= (end - 1) >> icache.line_shift; ++line) {
            cache_touch(&icache, line << icache.line_shift, region);
        }
    }
    if (previous != NULL) {
        count_edge(previous, b);
    }
    previous = b;
}

static void on_access(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t address, void *userdata)
{
    struct access *a = userdata;
    (void)vcpu;
    (void)info;
    if (!in_window) {
        return;
    }
    int region = region_of(address);
    uint64_t bank = (address >> 2) & 1u;
    a->count[region]++;
    a->bank_changes += bank != last_bank;
    last_bank = bank;
    cache_touch(&dcache, address, region);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    struct block *b = calloc(1, sizeof *b);
    if (b == NULL) {
        abort();
    }
    b->id = block_count++;
    b->pc = qemu_plugin_tb_vaddr(tb);
    b->n_insns = (uint32_t)n;
    b->insn_pcs = calloc(n ? n : 1, sizeof *b->insn_pcs);
    b->insn_sizes = calloc(n ? n : 1, sizeof *b->insn_sizes);
    b->accesses = calloc(n ? n : 1, sizeof *b->accesses);
    if (b->insn_pcs == NULL || b->insn_sizes == NULL || b->accesses == NULL) {
        abort();
    }
    b->next_block = blocks;
    blocks = b;
    fprintf(out, "t %" PRIu32 " %" PRIx64 " %" PRIu32 "\n", b->id, b->pc, b->n_insns);
    if (b->pc == marker) {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_marker, QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, QEMU_PLUGIN_CB_NO_REGS, b);
    for (size_t i = 0; i < n; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        b->insn_pcs[i] = qemu_plugin_insn_vaddr(insn);
        b->insn_sizes[i] = (uint32_t)qemu_plugin_insn_size(insn);
        /* Every instruction gets an access record; one that never touches memory stays at zero. */
        struct access *a = &b->accesses[b->n_accesses++];
        a->pc = b->insn_pcs[i];
        qemu_plugin_register_vcpu_mem_cb(insn, on_access, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, a);
    }
    fprintf(out, "i %" PRIu32, b->id);
    for (size_t i = 0; i < n; ++i) {
        fprintf(out, " %" PRIx64 ":%" PRIu32, b->insn_pcs[i], b->insn_sizes[i]);
    }
    fputc('\n', out);
}

static void on_qemu_exit(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    fprintf(out, "end %" PRIu32 "\n", window_index);
    fclose(out);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    const char *path = NULL;
    bool have_marker = false, have_flash = false, have_ram = false, have_stack = false;
    (void)info;
    for (int i = 0; i < argc; ++i) {
        const char *arg = argv[i];
        if (strncmp(arg, "out=", 4) == 0) {
            path = arg + 4;
        } else if (strncmp(arg, "marker=", 7) == 0) {
            marker = strtoull(arg + 7, NULL, 16);
            have_marker = true;
        } else if (strncmp(arg, "flash=", 6) == 0) {
            have_flash = parse_range(arg + 6, &flash);
        } else if (strncmp(arg, "ram=", 4) == 0) {
            have_ram = parse_range(arg + 4, &ram);
        } else if (strncmp(arg, "stack=", 6) == 0) {
            have_stack = parse_range(arg + 6, &stack);
        } else if (strncmp(arg, "dcache=", 7) == 0 || strncmp(arg, "icache=", 7) == 0) {
            if (!parse_cache(arg + 7, arg[0] == 'd' ? &dcache : &icache)) {
                fprintf(stderr, "tl_profile: bad cache '%s' (SIZE:WAYS:LINE:MASK)\n", arg);
                return 1;
            }
        } else {
            fprintf(stderr, "tl_profile: unknown argument '%s'\n", arg);
            return 1;
        }
    }
    if (path == NULL || !have_marker || !have_flash || !have_ram || !have_stack) {
        fprintf(stderr, "tl_profile: needs out=, marker=, flash=LO:HI, ram=LO:HI and stack=LO:HI\n");
        return 1;
    }
    out = fopen(path, "w");
    if (out == NULL) {
        perror(path);
        return 1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_qemu_exit, NULL);
    return 0;
}
