/*
 * BROKEN ON PURPOSE — seed 000's bug: the pthread objects are initialised on a STACK COPY of the
 * state, with default attributes, and the copy is then written into the segment. Default
 * attributes make the mutex and the condition variables process-PRIVATE: glibc then waits and
 * wakes on private futexes, keyed by each process's own address space, so a wake-up sent by
 * one process never reaches a waiter in another. A taker asleep on `filled` sleeps on while
 * the box is full — `torture mvar --impl-lib ./libpthread_mvar_broken.so --procs 50` reports
 * the hang within seconds. Everything else is the correct example's code.
 *
 * Build:  cc -O2 -shared -fPIC -pthread -I torture/include -o libpthread_mvar_broken.so \
 *             examples/c-pthread-mvar-broken/pthread_mvar_broken.c
 */
#define _GNU_SOURCE
#include "torture_mvar.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The shared state, at the start of the segment. */
struct state {
    pthread_mutex_t lock;
    pthread_cond_t filled;  /* takers and readers wait here */
    pthread_cond_t emptied; /* putters wait here */
    uint64_t commits;
    uint64_t len;
    int full;
    unsigned char data[];
};

struct torture_mvar {
    struct state *s;
    size_t map_len;
};

uint32_t torture_mvar_abi_version(void) { return TORTURE_MVAR_ABI_VERSION; }

uint32_t torture_mvar_capabilities(void) {
    return TORTURE_CAP_HOLDER | TORTURE_CAP_COMMITS | TORTURE_CAP_READ;
}

int torture_mvar_create(const char *name, size_t payload_len) {
    size_t size = sizeof(struct state) + payload_len;
    int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) return -1;
    if (ftruncate(fd, (off_t)size) != 0) {
        close(fd);
        shm_unlink(name);
        return -1;
    }
    struct state *s = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (s == MAP_FAILED) {
        shm_unlink(name);
        return -1;
    }
    /* The defect: initialised on the stack, default (process-private) attributes, copied. */
    struct state local;
    pthread_mutex_init(&local.lock, NULL);
    pthread_cond_init(&local.filled, NULL);
    pthread_cond_init(&local.emptied, NULL);
    local.commits = 0;
    local.len = payload_len;
    local.full = 0;
    memcpy(s, &local, sizeof local);
    munmap(s, size);
    return 0;
}

torture_mvar *torture_mvar_open(const char *name) {
    int fd = shm_open(name, O_RDWR, 0);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(struct state)) {
        close(fd);
        return NULL;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return NULL;
    torture_mvar *m = malloc(sizeof *m);
    if (!m) {
        munmap(p, (size_t)st.st_size);
        return NULL;
    }
    m->s = p;
    m->map_len = (size_t)st.st_size;
    return m;
}

/* The absolute CLOCK_MONOTONIC deadline `timeout_ns` from now. */
static struct timespec deadline_after(int64_t timeout_ns) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t); /* the default condvar clock */
    t.tv_sec += timeout_ns / 1000000000;
    t.tv_nsec += timeout_ns % 1000000000;
    if (t.tv_nsec >= 1000000000) {
        t.tv_sec += 1;
        t.tv_nsec -= 1000000000;
    }
    return t;
}

/* Waits on `cv` until `full == want`; 0 when it holds, TORTURE_TIMEOUT otherwise. The mutex is
 * held on entry and on return. */
static int wait_for(struct state *s, pthread_cond_t *cv, int want, int64_t timeout_ns) {
    struct timespec until;
    if (timeout_ns > 0) until = deadline_after(timeout_ns);
    while (s->full != want) {
        if (timeout_ns == 0) return TORTURE_TIMEOUT;
        int r = timeout_ns < 0 ? pthread_cond_wait(cv, &s->lock)
                               : pthread_cond_timedwait(cv, &s->lock, &until);
        if (r == ETIMEDOUT && s->full != want) return TORTURE_TIMEOUT;
    }
    return 0;
}

int torture_mvar_put(torture_mvar *m, const void *value, int64_t timeout_ns) {
    struct state *s = m->s;
    if (pthread_mutex_lock(&s->lock) != 0) return TORTURE_ERROR;
    int r = wait_for(s, &s->emptied, 0, timeout_ns);
    if (r == 0) {
        memcpy(s->data, value, s->len);
        s->full = 1;
        __atomic_store_n(&s->commits, s->commits + 1, __ATOMIC_RELEASE);
        /* Takers and readers share `filled`, and a reader leaves the box full: wake them all
         * (one signal could go to a reader and leave every taker asleep). */
        pthread_cond_broadcast(&s->filled);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

int torture_mvar_take(torture_mvar *m, void *out, int64_t timeout_ns) {
    struct state *s = m->s;
    if (pthread_mutex_lock(&s->lock) != 0) return TORTURE_ERROR;
    int r = wait_for(s, &s->filled, 1, timeout_ns);
    if (r == 0) {
        memcpy(out, s->data, s->len);
        s->full = 0;
        __atomic_store_n(&s->commits, s->commits + 1, __ATOMIC_RELEASE);
        pthread_cond_signal(&s->emptied);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

int torture_mvar_read(torture_mvar *m, void *out, int64_t timeout_ns) {
    struct state *s = m->s;
    if (pthread_mutex_lock(&s->lock) != 0) return TORTURE_ERROR;
    int r = wait_for(s, &s->filled, 1, timeout_ns);
    if (r == 0) memcpy(out, s->data, s->len);
    pthread_mutex_unlock(&s->lock);
    return r;
}

int32_t torture_mvar_holder(torture_mvar *m) {
    /* glibc: the owner's kernel thread id, 0 when free (a racy snapshot, as torture expects). */
    return __atomic_load_n(&m->s->lock.__data.__owner, __ATOMIC_RELAXED);
}

uint64_t torture_mvar_commits(torture_mvar *m) {
    return __atomic_load_n(&m->s->commits, __ATOMIC_ACQUIRE);
}

void torture_mvar_close(torture_mvar *m) {
    if (!m) return;
    munmap(m->s, m->map_len);
    free(m);
}

int torture_mvar_destroy(const char *name) { return shm_unlink(name) == 0 ? 0 : -1; }
