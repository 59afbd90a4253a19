// Brokered-open benchmark client with client threads (used by
// scripts/bench-latency.sh; a benchmark, it prints figures and asserts
// nothing). Spawned by a broker with `-open-hook-fd N` appended:
//
//   hook_client_mt PATH COUNT -open-hook-fd N
//
// Phases, all on the one hook connection the broker gives its child:
//   1. 2,000 warm-up QEMU_OPEN requests for PATH (O_RDONLY);
//   2. 1 thread:  COUNT timed round trips;
//   3. 2 threads: COUNT timed round trips each, concurrently.  The protocol
//      allows one request in flight per connection, so the threads take a
//      mutex around send + receive (as a shared client library must).  The
//      per-request time includes the wait for that mutex: this phase
//      measures what a request costs when two emulator threads contend for
//      one hook socket, not two parallel connections;
//   4. COUNT direct openat + close of PATH for comparison (both timed;
//      the brokered figures exclude the client's close of the fd).
// Throughput (opens/s) = requests completed / wall time of the phase,
// the fd being closed by the client each time.
// At the end it reads VmHWM of its parent (the broker) from
// /proc/<ppid>/status: the broker's peak RSS after serving every request.
//
// Prints one line of "key value" pairs:
//   t1_p50_ns t1_p99_ns t1_opens_per_s t2_p50_ns t2_p99_ns t2_opens_per_s
//   direct_p50_ns broker_vmhwm_kib
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int sock = -1;
static const char *path;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

// One QEMU_OPEN round trip (docs/protocol.md); returns the received fd or -1.
static int hook_open(uint32_t flags) {
    unsigned char buf[8 + 10 + 4096];
    uint16_t len = (uint16_t)strlen(path);
    uint32_t size = 18u + len, cmd = 1, mode = 0;
    memcpy(buf, &size, 4);
    memcpy(buf + 4, &cmd, 4);
    memcpy(buf + 8, &flags, 4);
    memcpy(buf + 12, &mode, 4);
    memcpy(buf + 16, &len, 2);
    memcpy(buf + 18, path, len);
    int fd = -1;
    pthread_mutex_lock(&lock);
    if (send(sock, buf, size, MSG_NOSIGNAL) == (ssize_t)size) {
        int32_t rep[3];
        char cb[CMSG_SPACE(sizeof(int))];
        struct iovec iov = {rep, 12};
        struct msghdr m = {0};
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = cb;
        m.msg_controllen = sizeof cb;
        if (recvmsg(sock, &m, MSG_CMSG_CLOEXEC | MSG_WAITALL) == 12 && rep[2] == 0) {
            struct cmsghdr *c = CMSG_FIRSTHDR(&m);
            if (c) memcpy(&fd, CMSG_DATA(c), sizeof fd);
        }
    }
    pthread_mutex_unlock(&lock);
    return fd;
}

struct job {
    int n;
    uint64_t *lat;
    int failed;
};

static void *worker(void *arg) {
    struct job *j = arg;
    for (int i = 0; i < j->n; i++) {
        uint64_t t = now_ns();
        int fd = hook_open(O_RDONLY);
        j->lat[i] = now_ns() - t;
        if (fd < 0) { j->failed = 1; return NULL; }
        close(fd);
    }
    return NULL;
}

// Runs `threads` workers of `n` requests each; fills p50/p99 over all
// requests and opens/s over the phase's wall time. Returns 0 on success.
static int phase(int threads, int n, uint64_t *p50, uint64_t *p99, double *rate) {
    struct job jobs[8];
    pthread_t tid[8];
    uint64_t *all = malloc((size_t)threads * (size_t)n * sizeof *all);
    if (!all) return -1;
    for (int t = 0; t < threads; t++) {
        jobs[t].n = n;
        jobs[t].lat = all + (size_t)t * (size_t)n;
        jobs[t].failed = 0;
    }
    uint64_t start = now_ns();
    for (int t = 0; t < threads; t++) pthread_create(&tid[t], NULL, worker, &jobs[t]);
    for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
    uint64_t wall = now_ns() - start;
    for (int t = 0; t < threads; t++) if (jobs[t].failed) { free(all); return -1; }
    size_t total = (size_t)threads * (size_t)n;
    qsort(all, total, sizeof *all, cmp);
    *p50 = all[total / 2];
    *p99 = all[total * 99 / 100];
    *rate = (double)total / ((double)wall / 1e9);
    free(all);
    return 0;
}

static long parent_vmhwm_kib(void) {
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/status", (int)getppid());
    FILE *f = fopen(p, "r");
    long kib = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) { kib = strtol(line + 6, NULL, 10); break; }
    fclose(f);
    return kib;
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: hook_client_mt PATH COUNT -open-hook-fd N\n"); return 2; }
    path = argv[1];
    int n = atoi(argv[2]);
    for (int i = 3; i + 1 < argc; i++) if (!strcmp(argv[i], "-open-hook-fd")) sock = atoi(argv[i + 1]);
    if (n < 100 || sock < 0 || strlen(path) > 4096) { fprintf(stderr, "bad arguments\n"); return 2; }
    for (int i = 0; i < 2000; i++) {
        int fd = hook_open(O_RDONLY);
        if (fd < 0) { fprintf(stderr, "brokered open failed\n"); return 3; }
        close(fd);
    }
    uint64_t a50, a99, b50, b99;
    double ar, br;
    if (phase(1, n, &a50, &a99, &ar) || phase(2, n, &b50, &b99, &br)) { fprintf(stderr, "brokered open failed\n"); return 3; }
    uint64_t *d = malloc((size_t)n * sizeof *d);
    if (!d) return 3;
    for (int i = 0; i < n; i++) {
        uint64_t t = now_ns();
        int fd = openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) { fprintf(stderr, "direct open failed\n"); return 3; }
        close(fd);
        d[i] = now_ns() - t;
    }
    qsort(d, (size_t)n, sizeof *d, cmp);
    printf("t1_p50_ns %llu t1_p99_ns %llu t1_opens_per_s %.0f t2_p50_ns %llu t2_p99_ns %llu t2_opens_per_s %.0f direct_p50_ns %llu broker_vmhwm_kib %ld\n",
           (unsigned long long)a50, (unsigned long long)a99, ar, (unsigned long long)b50, (unsigned long long)b99, br,
           (unsigned long long)d[n / 2], parent_vmhwm_kib());
    return 0;
}
