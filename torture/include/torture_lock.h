/*
 * torture_lock.h — the C ABI through which `torture locks --impl-lib ./libX.so` (and `torture
 * churn`, `torture storm`) torture a cross-process lock written in C (or anything that can
 * export C functions).
 *
 * A lock lives in shared memory under a name. Many processes use it at once; torture
 * re-executes itself for each worker process, and each worker calls `torture_lock_open` once
 * per lock and then only uses that handle from one thread. torture never releases a lock it
 * does not hold, and never re-acquires one it holds unless the library declares
 * TORTURE_LOCK_CAP_REENTRANT (then every acquire is matched by one release, innermost first).
 * Locks are acquired in many orders across processes on purpose: torture's own lock-order
 * validator watches the order (it needs nothing from the library).
 *
 * Return codes of acquire: TORTURE_OK, TORTURE_TIMEOUT (the timeout passed, or a `try`: the
 * lock is not held), TORTURE_OWNER_DIED (the lock IS held by the caller now, but the previous
 * holder died holding it — only a robust lock returns it; a pthread robust mutex's EOWNERDEAD
 * after pthread_mutex_consistent), TORTURE_ERROR (anything else; the worker stops with it).
 * Release returns TORTURE_OK or TORTURE_ERROR.
 *
 * Timeouts are in nanoseconds: < 0 waits as long as needed, 0 never waits (try), > 0 waits at
 * most about that long (measure it on CLOCK_MONOTONIC).
 *
 * Capabilities (torture_lock_capabilities); what a missing one prevents torture from checking
 * is listed in its report:
 *   TORTURE_LOCK_CAP_ROBUST     a holder killed at ANY instruction (kill -9) wedges no one:
 *                               the next acquirer gets the lock with TORTURE_OWNER_DIED.
 *   TORTURE_LOCK_CAP_HOLDER     torture_lock_holder names the pid holding the lock (0: free):
 *                               lets torture draw the wait-for graph of a deadlock across
 *                               processes and classify a hang "lock held by dead pid N".
 *   TORTURE_LOCK_CAP_REENTRANT  the holder may acquire it again (nested; released as often).
 *
 * Required symbols: torture_lock_abi_version, torture_lock_capabilities, torture_lock_create,
 * torture_lock_open, torture_lock_acquire, torture_lock_release, torture_lock_close,
 * torture_lock_destroy. Optional (TORTURE_LOCK_CAP_HOLDER): torture_lock_holder. A library
 * missing a required symbol, returning another ABI version, or crashing while loaded is a
 * setup error (torture exits 2 before starting any worker). A library may export this ABI and
 * torture_mvar.h's both.
 */
#ifndef TORTURE_LOCK_H
#define TORTURE_LOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TORTURE_LOCK_ABI_VERSION 1u

/* The return codes (the same values as in torture_mvar.h). */
#ifndef TORTURE_OK
#define TORTURE_OK 0
#define TORTURE_TIMEOUT 1
#define TORTURE_OWNER_DIED 2
#define TORTURE_ERROR (-1)
#endif

#define TORTURE_LOCK_CAP_ROBUST 1u
#define TORTURE_LOCK_CAP_HOLDER 2u
#define TORTURE_LOCK_CAP_REENTRANT 4u

/* An open lock, private to one process (opaque to torture). */
typedef struct torture_lock torture_lock;

/* Must return TORTURE_LOCK_ABI_VERSION as compiled into the library. */
uint32_t torture_lock_abi_version(void);
/* A set of TORTURE_LOCK_CAP_* bits. */
uint32_t torture_lock_capabilities(void);

/* Creates the shared lock `name` (a POSIX shm name, "/..."), free. Called once, by the runner,
 * before any worker starts. 0, or -1. */
int torture_lock_create(const char *name);
/* Opens the lock `name` in this process; NULL on error. */
torture_lock *torture_lock_open(const char *name);
/* Acquires the lock (see the return codes and timeouts above). */
int torture_lock_acquire(torture_lock *l, int64_t timeout_ns);
/* Releases one acquisition held by the caller. */
int torture_lock_release(torture_lock *l);
/* Optional (TORTURE_LOCK_CAP_HOLDER): the pid holding the lock now, 0 if free. */
int32_t torture_lock_holder(torture_lock *l);
/* Closes this process's handle (the caller holds no acquisition of it). */
void torture_lock_close(torture_lock *l);
/* Removes the shared lock `name` (the runner calls it once, on every exit path). 0, or -1. */
int torture_lock_destroy(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* TORTURE_LOCK_H */
