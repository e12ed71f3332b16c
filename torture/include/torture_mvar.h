/*
 * torture_mvar.h — the C ABI through which `torture mvar --impl-lib ./libX.so` tortures a
 * cross-process MVar written in C (or anything that can export C functions).
 *
 * An MVar is a box in shared memory that is empty or full of `payload_len` bytes (fixed at
 * creation). `put` waits while it is full, `take` while it is empty. Many processes use one
 * box at once; torture re-executes itself for each worker process, and each worker calls
 * `torture_mvar_open` once and then only uses its handle from one thread.
 *
 * Return codes of put/take/read: TORTURE_OK, TORTURE_TIMEOUT (the timeout passed, or a
 * `try`: nothing happened and the value is untouched), TORTURE_OWNER_DIED (the operation
 * completed, but had to recover the object from a participant that died holding it — only a
 * robust implementation returns it), TORTURE_ERROR (anything else; the worker stops with it).
 *
 * Timeouts are in nanoseconds: < 0 waits as long as needed, 0 never waits (try), > 0 waits at
 * most about that long (measure it on CLOCK_MONOTONIC).
 *
 * Capabilities (torture_mvar_capabilities) say what torture may rely on; what a missing one
 * prevents torture from checking is listed in its report:
 *   TORTURE_CAP_ROBUST   a participant killed at ANY instruction (kill -9) loses nothing and
 *                        wedges no one (robust mutexes, or lock-free recovery).
 *   TORTURE_CAP_HOLDER   torture_mvar_holder names the pid of the process holding the box's
 *                        lock (0: free): lets torture classify a hang "lock held by dead pid N".
 *   TORTURE_CAP_COMMITS  torture_mvar_commits counts completed puts + takes since creation:
 *                        lets torture account exactly for values that died with killed workers.
 *   TORTURE_CAP_READ     torture_mvar_read is exported (a copy of the value; the box stays full).
 *
 * Required symbols: torture_mvar_abi_version, torture_mvar_capabilities, torture_mvar_create,
 * torture_mvar_open, torture_mvar_put, torture_mvar_take, torture_mvar_close,
 * torture_mvar_destroy. Optional (per capability): torture_mvar_holder, torture_mvar_commits,
 * torture_mvar_read. A library missing a required symbol, returning another ABI version, or
 * crashing while loaded is a setup error (torture exits 2 before starting any worker).
 */
#ifndef TORTURE_MVAR_H
#define TORTURE_MVAR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TORTURE_MVAR_ABI_VERSION 1u

#define TORTURE_OK 0
#define TORTURE_TIMEOUT 1
#define TORTURE_OWNER_DIED 2
#define TORTURE_ERROR (-1)

#define TORTURE_CAP_ROBUST 1u
#define TORTURE_CAP_HOLDER 2u
#define TORTURE_CAP_COMMITS 4u
#define TORTURE_CAP_READ 8u

/* An open box, private to one process (opaque to torture). */
typedef struct torture_mvar torture_mvar;

/* Must return TORTURE_MVAR_ABI_VERSION as compiled into the library. */
uint32_t torture_mvar_abi_version(void);
/* A set of TORTURE_CAP_* bits. */
uint32_t torture_mvar_capabilities(void);

/* Creates the shared box `name` (a POSIX shm name, "/..."), empty, holding values of
 * `payload_len` bytes. Called once, by the runner, before any worker starts. 0, or -1. */
int torture_mvar_create(const char *name, size_t payload_len);
/* Opens the box `name` in this process; NULL on error. */
torture_mvar *torture_mvar_open(const char *name);
/* Puts `payload_len` bytes from `value`, waiting while full (see timeouts above). */
int torture_mvar_put(torture_mvar *m, const void *value, int64_t timeout_ns);
/* Takes the value into `out` (`payload_len` bytes), waiting while empty. */
int torture_mvar_take(torture_mvar *m, void *out, int64_t timeout_ns);
/* Optional (TORTURE_CAP_READ): copies the value into `out`, waiting while empty. */
int torture_mvar_read(torture_mvar *m, void *out, int64_t timeout_ns);
/* Optional (TORTURE_CAP_HOLDER): the pid holding the box's lock now, 0 if free. */
int32_t torture_mvar_holder(torture_mvar *m);
/* Optional (TORTURE_CAP_COMMITS): completed puts + takes since creation. */
uint64_t torture_mvar_commits(torture_mvar *m);
/* Closes this process's handle. */
void torture_mvar_close(torture_mvar *m);
/* Removes the shared box `name` (the runner calls it once, on every exit path). 0, or -1. */
int torture_mvar_destroy(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* TORTURE_MVAR_H */
