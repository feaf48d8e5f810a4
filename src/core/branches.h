/* branches.h — independent branches of a model, run at the same time on loom's threads
 * (core/branches.c finds them and decides; core/engine.c runs them).
 *
 * A region is a run of positions [start, end) of the order, just before a node that joins them,
 * whose nodes fall into two or more parts with no edge between them: the title and body towers of
 * a two-text model, ending at their Concatenate. Each part reads nothing but graph inputs from
 * outside, and no layer has call sites in two parts, so parts share no value, gradient or weight:
 * one thread can run one part while another runs the next, each part's ops on one thread. */
#ifndef LOOM_CORE_BRANCHES_H
#define LOOM_CORE_BRANCHES_H

#include "core/model.h"

/* threads one region runs on at most (the products' workspace is planned per lane) */
#define LOOM_MAX_LANES 8

enum { LOOM_BRANCH_FORWARD, LOOM_BRANCH_BACKWARD };

typedef struct loom_region {
    int start, end;  /* positions [start, end) */
    int n_parts;
    int *part;       /* per position - start: its part, -1 for an input node (no work) */
    int *part_nodes; /* per part: its nodes, what lanes are balanced by */
    int *lane;       /* per part: the lane that runs it, made for `lanes` lanes */
    int lanes;       /* 0: not assigned yet */
    /* per direction: how the last runs took, sequential [0] against concurrent [1], and the choice
     * made from them (-1 while measuring) at `threads` threads */
    struct {
        int threads, choice;
        int runs[2];
        double seconds[2];
    } timing[2];
} loom_region;

struct loom_branches {
    int n;
    loom_region *r;
    int *region_at;  /* per position: the region starting there, else -1 */
    int *region_of;  /* per position: the region holding it, else -1 */
    int force;       /* LOOM_BRANCHES: 0 never concurrent, 1 always (two threads or more), -1 measured */
};

/* Finds the regions of m's order (once per model; the order never changes). false: out of memory. */
bool loom_branches_find(loom_model *m);
void loom_branches_free(loom_branches *b);

/* How region r runs this time in direction dir: 0 sequential (each op may use every thread),
 * else the number of lanes (threads each running whole parts), at most max_lanes. While the
 * choice is being measured it alternates; loom_branches_record gives it each run's time. Both
 * give the same bits: every op computes the same values on one thread as on several. */
int loom_branches_lanes(loom_branches *b, loom_region *r, int dir, int max_lanes);
void loom_branches_record(loom_region *r, int dir, int lanes, double seconds);
/* a monotonic clock, in seconds, for those measurements */
double loom_branches_now(void);

#endif
