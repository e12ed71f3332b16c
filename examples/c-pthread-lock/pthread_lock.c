/*
 * A cross-process lock in POSIX shared memory: one pthread mutex, process-shared, ROBUST and
 * RECURSIVE, initialised in place in the segment. Implements torture/include/torture_lock.h
 * (ABI 1).
 *
 * Build:  cc -O2 -shared -fPIC -pthread -I torture/include -o libpthread_lock.so \
 *             examples/c-pthread-lock/pthread_lock.c
 * Run:    torture locks --impl-lib ./libpthread_lock.so --procs 8 --kill-rate 20
 *
 * Capabilities: ROBUST (a holder killed at any instruction leaves the mutex to the kernel's
 * robust list: the next acquirer gets EOWNERDEAD, marks the mutex consistent and returns
 * TORTURE_OWNER_DIED), HOLDER (glibc keeps the owner's thread id in the mutex; torture's
 * workers use it from their main thread, whose id is the pid), REENTRANT.
 *
 * Built with -DNOT_ROBUST the mutex is not robust (and the library says so): a holder killed
 * by `--kill-rate` leaves it locked for ever, and torture reports "not robust to kill -9:
 * lock A held by dead pid N".
 */
#define _GNU_SOURCE
#include "torture_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct state {
    pthread_mutex_t mutex;
};

struct torture_lock {
    struct state *s;
};

uint32_t torture_lock_abi_version(void) { return TORTURE_LOCK_ABI_VERSION; }

uint32_t torture_lock_capabilities(void) {
#ifdef NOT_ROBUST
    return TORTURE_LOCK_CAP_HOLDER | TORTURE_LOCK_CAP_REENTRANT;
#else
    return TORTURE_LOCK_CAP_ROBUST | TORTURE_LOCK_CAP_HOLDER | TORTURE_LOCK_CAP_REENTRANT;
#endif
}

int torture_lock_create(const char *name) {
    int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) return -1;
    if (ftruncate(fd, sizeof(struct state)) != 0) {
        close(fd);
        shm_unlink(name);
        return -1;
    }
    struct state *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (s == MAP_FAILED) {
        shm_unlink(name);
        return -1;
    }
    pthread_mutexattr_t a;
    int rc = pthread_mutexattr_init(&a);
    rc = rc ? rc : pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    rc = rc ? rc : pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
#ifndef NOT_ROBUST
    rc = rc ? rc : pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
#endif
    /* In place: the mutex lives in the segment, never in a copy. */
    rc = rc ? rc : pthread_mutex_init(&s->mutex, &a);
    pthread_mutexattr_destroy(&a);
    munmap(s, sizeof *s);
    if (rc != 0) {
        shm_unlink(name);
        return -1;
    }
    return 0;
}

torture_lock *torture_lock_open(const char *name) {
    int fd = shm_open(name, O_RDWR, 0);
    if (fd < 0) return NULL;
    struct state *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (s == MAP_FAILED) return NULL;
    torture_lock *l = malloc(sizeof *l);
    if (!l) {
        munmap(s, sizeof *s);
        return NULL;
    }
    l->s = s;
    return l;
}

int torture_lock_acquire(torture_lock *l, int64_t timeout_ns) {
    int rc;
    if (timeout_ns < 0) {
        rc = pthread_mutex_lock(&l->s->mutex);
    } else if (timeout_ns == 0) {
        rc = pthread_mutex_trylock(&l->s->mutex);
    } else {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        t.tv_sec += timeout_ns / 1000000000;
        t.tv_nsec += timeout_ns % 1000000000;
        if (t.tv_nsec >= 1000000000) {
            t.tv_sec += 1;
            t.tv_nsec -= 1000000000;
        }
        rc = pthread_mutex_clocklock(&l->s->mutex, CLOCK_MONOTONIC, &t);
    }
    switch (rc) {
    case 0:
        return TORTURE_OK;
    case EOWNERDEAD:
        /* We hold it; what it protects is ours to repair (torture's traffic keeps nothing
         * under it), then it is usable again. */
        if (pthread_mutex_consistent(&l->s->mutex) != 0) return TORTURE_ERROR;
        return TORTURE_OWNER_DIED;
    case EBUSY:
    case ETIMEDOUT:
        return TORTURE_TIMEOUT;
    default:
        return TORTURE_ERROR;
    }
}

int torture_lock_release(torture_lock *l) {
    return pthread_mutex_unlock(&l->s->mutex) == 0 ? TORTURE_OK : TORTURE_ERROR;
}

int32_t torture_lock_holder(torture_lock *l) {
    /* glibc's owner thread id (0: free); with FUTEX_OWNER_DIED unset it is the holder. */
    return __atomic_load_n(&l->s->mutex.__data.__owner, __ATOMIC_RELAXED);
}

void torture_lock_close(torture_lock *l) {
    munmap(l->s, sizeof *l->s);
    free(l);
}

int torture_lock_destroy(const char *name) { return shm_unlink(name); }
