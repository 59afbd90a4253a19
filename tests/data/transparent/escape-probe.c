// Escape attempts for transparent mode (tests/tests/transparent_escape.rs).
// Built by the test with `gcc -O2 -static -pthread` into its scratch
// directory, run once unconfined and once under
// `openhook-broker --transparent`. Every attempt uses the raw system call
// (syscall(2) or inline asm), so the C library cannot rewrite it.
//
//   escape-probe ATTEMPT ARGS...
//
// Prints one line on stdout:
//   ok fd DEV INO        the attempt produced an fd (its fstat identity)
//   ok                   the attempt succeeded without producing an fd
//   ok pid N self M      (readpid) the Pid: line read, and the probe's own
//   ok handle T HEX      (mkhandle) a file handle
//   err N                the attempt failed with errno N
// `race` prints `race` followed by `DEV:INO=COUNT` for every file it got an
// fd to and `err=COUNT`. A killed probe prints nothing (SIGSYS shows in the
// exit status).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_faccessat2
#define SYS_faccessat2 439
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif

static int report_fd(long fd) {
    if (fd < 0) {
        printf("err %d\n", errno);
        return 0;
    }
    struct stat st;
    if (syscall(SYS_fstat, (int)fd, &st) != 0) {
        printf("err-fstat %d\n", errno);
        return 1;
    }
    printf("ok fd %llu %llu\n", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    return 0;
}

static int report(long r) {
    if (r < 0)
        printf("err %d\n", errno);
    else
        printf("ok\n");
    return 0;
}

static int flag_bits(const char *s) {
    int f = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "rdonly")) f |= O_RDONLY;
        else if (!strcmp(t, "wronly")) f |= O_WRONLY;
        else if (!strcmp(t, "rdwr")) f |= O_RDWR;
        else if (!strcmp(t, "path")) f |= O_PATH;
        else if (!strcmp(t, "creat")) f |= O_CREAT;
        else if (!strcmp(t, "trunc")) f |= O_TRUNC;
        else if (!strcmp(t, "directory")) f |= O_DIRECTORY;
        else if (!strcmp(t, "nofollow")) f |= O_NOFOLLOW;
        else if (!strcmp(t, "cloexec")) f |= O_CLOEXEC;
        else if (!strcmp(t, "tmpfile")) f |= O_TMPFILE;
        else {
            fprintf(stderr, "unknown flag %s\n", t);
            exit(2);
        }
    }
    return f;
}

static unsigned long long resolve_bits(const char *s) {
    unsigned long long r = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "0")) r |= 0;
        else if (!strcmp(t, "beneath")) r |= RESOLVE_BENEATH;
        else if (!strcmp(t, "in_root")) r |= RESOLVE_IN_ROOT;
        else if (!strcmp(t, "no_magiclinks")) r |= RESOLVE_NO_MAGICLINKS;
        else if (!strcmp(t, "no_symlinks")) r |= RESOLVE_NO_SYMLINKS;
        else if (!strcmp(t, "no_xdev")) r |= RESOLVE_NO_XDEV;
        else if (!strcmp(t, "cached")) r |= RESOLVE_CACHED;
        else {
            fprintf(stderr, "unknown resolve flag %s\n", t);
            exit(2);
        }
    }
    return r;
}

// A directory fd from a spec: "cwd" (AT_FDCWD), a number (an inherited
// fd), or a path opened O_DIRECTORY (through the broker when confined).
static int dir_spec(const char *s) {
    if (!strcmp(s, "cwd")) return AT_FDCWD;
    if (s[0] >= '0' && s[0] <= '9') return atoi(s);
    int fd = syscall(SYS_openat, AT_FDCWD, s, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        printf("err-dir %d\n", errno);
        exit(0);
    }
    return fd;
}

// ---- the path-rewriting race ----

static char race_buf[4096] __attribute__((aligned(64)));
static char race_a[4096], race_b[4096];
static volatile int race_stop;

static volatile long flips;

static void *flipper(void *arg) {
    (void)arg;
    size_t n = strlen(race_a) + 1;
    while (!race_stop) {
        memcpy(race_buf, race_b, n);
        memcpy(race_buf, race_a, n);
        flips++;
    }
    return NULL;
}

// Returns once the flipping thread is running (on a loaded machine it may
// not get a CPU for a while: the race must not be over before it starts).
static void wait_for_flips(void) {
    while (flips < 1000) sched_yield();
}

struct ident { unsigned long long dev, ino; long count; };

static int cwd_a, cwd_b;

static void *cwd_flipper(void *arg) {
    (void)arg;
    while (!race_stop) {
        syscall(SYS_fchdir, cwd_a);
        syscall(SYS_fchdir, cwd_b);
        flips++;
    }
    return NULL;
}

static void count_open(const char *name, struct ident *ids, int *nids, long *errs) {
    int fd = syscall(SYS_openat, AT_FDCWD, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        (*errs)++;
        return;
    }
    struct stat st;
    syscall(SYS_fstat, fd, &st);
    close(fd);
    int j;
    for (j = 0; j < *nids; j++)
        if (ids[j].dev == st.st_dev && ids[j].ino == st.st_ino) break;
    if (j == *nids && *nids < 64) {
        ids[j].dev = st.st_dev;
        ids[j].ino = st.st_ino;
        ids[j].count = 0;
        (*nids)++;
    }
    if (j < 64) ids[j].count++;
}

// cwd_race DIR_A DIRFD_B NAME ROUNDS: a thread flips the (shared) cwd
// between DIR_A (opened here) and inherited fd DIRFD_B while NAME is opened
// relative to it ROUNDS times; prints like race.
static int cwd_race(const char *dir_a, int fd_b, const char *name, long rounds) {
    cwd_a = syscall(SYS_openat, AT_FDCWD, dir_a, O_RDONLY | O_DIRECTORY);
    if (cwd_a < 0) {
        printf("err-dir %d\n", errno);
        return 0;
    }
    cwd_b = fd_b;
    pthread_t t;
    pthread_create(&t, NULL, cwd_flipper, NULL);
    wait_for_flips();
    struct ident ids[64];
    int nids = 0;
    long errs = 0;
    for (long i = 0; i < rounds; i++) count_open(name, ids, &nids, &errs);
    race_stop = 1;
    pthread_join(t, NULL);
    printf("race");
    for (int j = 0; j < nids; j++) printf(" %llu:%llu=%ld", ids[j].dev, ids[j].ino, ids[j].count);
    printf(" err=%ld\n", errs);
    return 0;
}

static int race(const char *inside, const char *outside, long rounds) {
    if (strlen(inside) != strlen(outside) || strlen(inside) >= sizeof race_buf) {
        fprintf(stderr, "race paths must have the same length\n");
        return 2;
    }
    strcpy(race_a, inside);
    strcpy(race_b, outside);
    strcpy(race_buf, inside);
    pthread_t t;
    pthread_create(&t, NULL, flipper, NULL);
    wait_for_flips();
    struct ident ids[64];
    int nids = 0;
    long errs = 0;
    for (long i = 0; i < rounds; i++) count_open(race_buf, ids, &nids, &errs);
    race_stop = 1;
    pthread_join(t, NULL);
    printf("race");
    for (int j = 0; j < nids; j++) printf(" %llu:%llu=%ld", ids[j].dev, ids[j].ino, ids[j].count);
    printf(" err=%ld\n", errs);
    return 0;
}

// ---- io_uring openat, without liburing ----

static int uring_openat(const char *path) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    int ring = syscall(SYS_io_uring_setup, 4, &p);
    if (ring < 0) {
        printf("err %d\n", errno);
        return 0;
    }
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
    char *cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
    struct io_uring_sqe *sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                                     MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
        printf("err-mmap %d\n", errno);
        return 0;
    }
    unsigned *tail = (unsigned *)(sq + p.sq_off.tail);
    unsigned mask = *(unsigned *)(sq + p.sq_off.ring_mask);
    unsigned *array = (unsigned *)(sq + p.sq_off.array);
    memset(&sqes[0], 0, sizeof sqes[0]);
    sqes[0].opcode = IORING_OP_OPENAT;
    sqes[0].fd = AT_FDCWD;
    sqes[0].addr = (uintptr_t)path;
    sqes[0].open_flags = O_RDONLY;
    sqes[0].user_data = 1;
    unsigned t = *tail;
    array[t & mask] = 0;
    __atomic_store_n(tail, t + 1, __ATOMIC_RELEASE);
    long n = syscall(SYS_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    if (n < 0) {
        printf("err-enter %d\n", errno);
        return 0;
    }
    unsigned *cq_head = (unsigned *)(cq + p.cq_off.head);
    unsigned cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
    struct io_uring_cqe *cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    int res = cqes[*cq_head & cq_mask].res;
    if (res < 0) {
        errno = -res;
        return report_fd(-1);
    }
    return report_fd(res);
}

// ---- the other ABIs ----

static int int80_open(const char *path) {
    char *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (low == MAP_FAILED) {
        printf("err-mmap %d\n", errno);
        return 0;
    }
    snprintf(low, 4096, "%s", path);
    long ret;
    // i386 open(2) is number 5: eax, ebx, ecx, edx.
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(5L), "b"(low), "c"((long)O_RDONLY), "d"(0L)
                     : "memory", "r8", "r9", "r10", "r11");
    if (ret < 0 && ret > -4096) {
        errno = (int)-ret;
        return report_fd(-1);
    }
    return report_fd(ret);
}

static int x32_openat(const char *path) {
    // x32 uses the x86-64 numbers with bit 30 set.
    long fd = syscall(0x40000000L | SYS_openat, AT_FDCWD, path, O_RDONLY, 0);
    return report_fd(fd);
}

// ---- seccomp listener of our own ----

static int own_listener(void) {
    struct sock_filter f[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    struct sock_fprog prog = {1, f};
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    return report(fd);
}

// ---- file handles ----

static int mkhandle(const char *path) {
    struct file_handle *fh = malloc(sizeof *fh + MAX_HANDLE_SZ);
    fh->handle_bytes = MAX_HANDLE_SZ;
    int mount_id;
    if (syscall(SYS_name_to_handle_at, AT_FDCWD, path, fh, &mount_id, 0) != 0) {
        printf("err %d\n", errno);
        return 0;
    }
    printf("ok handle %d ", fh->handle_type);
    for (unsigned i = 0; i < fh->handle_bytes; i++) printf("%02x", fh->f_handle[i]);
    printf("\n");
    return 0;
}

static int byhandle(const char *mount_path, const char *type, const char *hex) {
    size_t n = strlen(hex) / 2;
    struct file_handle *fh = malloc(sizeof *fh + n);
    fh->handle_bytes = n;
    fh->handle_type = atoi(type);
    for (size_t i = 0; i < n; i++) sscanf(hex + 2 * i, "%2hhx", &fh->f_handle[i]);
    int mfd = dir_spec(mount_path);
    return report_fd(syscall(SYS_open_by_handle_at, mfd, fh, O_RDONLY));
}

// ---- helpers run in another task ----

static int shared_result[2];

static int child_open(void *arg) {
    long fd = syscall(SYS_openat, AT_FDCWD, (const char *)arg, O_RDONLY);
    if (fd < 0) {
        shared_result[0] = -errno;
        return 0;
    }
    struct stat st;
    syscall(SYS_fstat, (int)fd, &st);
    shared_result[0] = 1;
    shared_result[1] = (int)st.st_ino;
    return 0;
}

static void *thread_open(void *arg) {
    report_fd(syscall(SYS_openat, AT_FDCWD, (const char *)arg, O_RDONLY));
    return NULL;
}

static void *thread_readpid(void *arg) {
    char buf[4096];
    int fd = syscall(SYS_openat, AT_FDCWD, (const char *)arg, O_RDONLY);
    if (fd < 0) {
        printf("err %d\n", errno);
        return NULL;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    char *p = strstr(buf, "\nPid:\t");
    printf("ok pid %ld self %ld\n", p ? strtol(p + 6, NULL, 10) : -1L, (long)syscall(SYS_gettid));
    return NULL;
}

static int fork_child_for(int (*fn)(pid_t)) {
    pid_t c = fork();
    if (c == 0) {
        pause();
        _exit(0);
    }
    int r = fn(c);
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    return r;
}

static volatile long vm_word = 0x1234;

static int do_ptrace(pid_t c) {
    return report(syscall(SYS_ptrace, PTRACE_SEIZE, c, 0, 0));
}

static int do_vm_readv(pid_t c) {
    long v = 0;
    struct iovec l = {&v, sizeof v}, r = {(void *)&vm_word, sizeof v};
    return report(syscall(SYS_process_vm_readv, c, &l, 1, &r, 1, 0));
}

static int do_vm_writev(pid_t c) {
    long v = 7;
    struct iovec l = {&v, sizeof v}, r = {(void *)&vm_word, sizeof v};
    return report(syscall(SYS_process_vm_writev, c, &l, 1, &r, 1, 0));
}

static int unix_sock(const char *path, int do_bind) {
    int s = syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0);
    if (s < 0) return report(-1);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    return report(syscall(do_bind ? SYS_bind : SYS_connect, s, &a, sizeof a));
}

// ---- serving under load ----

struct worker { const char *in, *out; long rounds; unsigned long long in_ino; long bad, ok_in, denied_out; };

static void *worker_loop(void *arg) {
    struct worker *w = arg;
    for (long i = 0; i < w->rounds; i++) {
        int fd = syscall(SYS_openat, AT_FDCWD, w->in, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && syscall(SYS_fstat, fd, &st) == 0 && st.st_ino == w->in_ino)
            w->ok_in++;
        else
            w->bad++;
        if (fd >= 0) close(fd);
        fd = syscall(SYS_openat, AT_FDCWD, w->out, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == EPERM)
            w->denied_out++;
        else
            w->bad++;
        if (fd >= 0) close(fd);
    }
    return NULL;
}

// threads N ROUNDS INSIDE OUTSIDE: N threads at once, each opening INSIDE
// (must be that file) and OUTSIDE (must be EPERM) ROUNDS times.
static int threads(int n, long rounds, const char *in, const char *out) {
    struct stat st;
    if (syscall(SYS_stat, in, &st) != 0) {
        printf("err %d\n", errno);
        return 0;
    }
    struct worker w[64];
    pthread_t t[64];
    if (n > 64) n = 64;
    for (int i = 0; i < n; i++) {
        w[i] = (struct worker){in, out, rounds, st.st_ino, 0, 0, 0};
        pthread_create(&t[i], NULL, worker_loop, &w[i]);
    }
    long bad = 0, ok_in = 0, denied = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        bad += w[i].bad;
        ok_in += w[i].ok_in;
        denied += w[i].denied_out;
    }
    printf("ok threads inside=%ld denied=%ld bad=%ld\n", ok_in, denied, bad);
    return 0;
}

static void *open_blocking(void *arg) {
    syscall(SYS_openat, AT_FDCWD, (const char *)arg, O_RDONLY);
    return NULL;
}

// fifo FIFO FILE: four threads open FIFO (no writer: natively they
// block), then the main thread opens FILE; exits without waiting for them.
static int fifo_then_open(const char *fifo, const char *file) {
    pthread_t t;
    for (int i = 0; i < 4; i++) pthread_create(&t, NULL, open_blocking, (void *)fifo);
    usleep(200000);
    return report_fd(syscall(SYS_openat, AT_FDCWD, file, O_RDONLY));
}

static void *connect_blocking(void *arg) {
    int s = syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", (const char *)arg);
    syscall(SYS_connect, s, &a, sizeof a);
    return NULL;
}

// connect_block SOCK N FILE: N threads connect to SOCK (a listener that
// never accepts: past its backlog, connect blocks), then the main thread
// opens FILE and exits without waiting for them.
static int connect_block(const char *sock, int n, const char *file) {
    pthread_t t;
    for (int i = 0; i < n; i++) pthread_create(&t, NULL, connect_blocking, (void *)sock);
    usleep(300000);
    return report_fd(syscall(SYS_openat, AT_FDCWD, file, O_RDONLY));
}

// churn ROUNDS PATH: prints `ready`, waits for a line on stdin; then
// ROUNDS times forks a child that opens PATH in a loop and kills it
// within a millisecond (threads die mid-request); prints `churned`, waits
// for a line, opens PATH once more and reports.
static int churn(long rounds, const char *path) {
    char line[16];
    printf("ready\n");
    if (!fgets(line, sizeof line, stdin)) return 3;
    for (long i = 0; i < rounds; i++) {
        pid_t c = fork();
        if (c == 0) {
            for (;;) {
                int fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY);
                if (fd >= 0) close(fd);
            }
        }
        usleep((i * 37) % 1000);
        kill(c, SIGKILL);
        waitpid(c, NULL, 0);
    }
    printf("churned\n");
    if (!fgets(line, sizeof line, stdin)) return 3;
    return report_fd(syscall(SYS_openat, AT_FDCWD, path, O_RDONLY));
}

#define ARG(i) (argc > (i) ? argv[i] : (fprintf(stderr, "missing argument %d\n", i), exit(2), ""))

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: %s ATTEMPT ARGS...\n", argv[0]);
        return 2;
    }
    const char *a = argv[1];
    struct stat st;
    char buf[4096];

    // --- opens ---
    if (!strcmp(a, "open")) // open PATH [FLAGS]
        return report_fd(syscall(SYS_openat, AT_FDCWD, ARG(2), argc > 3 ? flag_bits(argv[3]) : O_RDONLY, 0600));
    if (!strcmp(a, "sys_open")) // the legacy open(2)
        return report_fd(syscall(SYS_open, ARG(2), argc > 3 ? flag_bits(argv[3]) : O_RDONLY, 0600));
    if (!strcmp(a, "creat"))
        return report_fd(syscall(SYS_creat, ARG(2), 0600));
    if (!strcmp(a, "openat")) { // openat DIRSPEC REL [FLAGS]
        int d = dir_spec(ARG(2));
        return report_fd(syscall(SYS_openat, d, ARG(3), argc > 4 ? flag_bits(argv[4]) : O_RDONLY, 0600));
    }
    if (!strcmp(a, "fchdir")) { // fchdir DIRSPEC REL
        int d = dir_spec(ARG(2));
        if (syscall(SYS_fchdir, d) != 0) {
            printf("err-fchdir %d\n", errno);
            return 0;
        }
        return report_fd(syscall(SYS_openat, AT_FDCWD, ARG(3), O_RDONLY));
    }
    if (!strcmp(a, "openat2")) { // openat2 DIRSPEC PATH RESOLVE [FLAGS]
        int d = dir_spec(ARG(2));
        struct open_how how;
        memset(&how, 0, sizeof how);
        how.flags = argc > 5 ? flag_bits(argv[5]) : O_RDONLY;
        how.resolve = resolve_bits(ARG(4));
        long fd = syscall(SYS_openat2, d, ARG(3), &how, sizeof how);
        if (fd < 0 && errno == EAGAIN && (how.resolve & RESOLVE_CACHED))
            fd = syscall(SYS_openat2, d, argv[3], &how, sizeof how);
        return report_fd(fd);
    }
    if (!strcmp(a, "openat2_big")) { // openat2 with a larger, zero-padded struct open_how
        uint64_t how[8] = {O_RDONLY, 0, 0, 0, 0, 0, 0, 0};
        return report_fd(syscall(SYS_openat2, AT_FDCWD, ARG(2), how, sizeof how));
    }
    if (!strcmp(a, "reopen")) { // reopen PATH FLAGS REOPEN_FLAGS: open, then /proc/self/fd/N
        int fd = syscall(SYS_openat, AT_FDCWD, ARG(2), flag_bits(ARG(3)));
        if (fd < 0) {
            printf("err-first %d\n", errno);
            return 0;
        }
        snprintf(buf, sizeof buf, "/proc/self/fd/%d", fd);
        return report_fd(syscall(SYS_openat, AT_FDCWD, buf, flag_bits(ARG(4))));
    }
    if (!strcmp(a, "ppid")) { // ppid SUFFIX: /proc/<parent pid>SUFFIX
        snprintf(buf, sizeof buf, "/proc/%d%s", (int)getppid(), ARG(2));
        return report_fd(syscall(SYS_openat, AT_FDCWD, buf, O_RDONLY));
    }
    if (!strcmp(a, "self_ppid")) { // self_ppid SUFFIX: /proc/self/../<parent pid>SUFFIX
        snprintf(buf, sizeof buf, "/proc/self/../%d%s", (int)getppid(), ARG(2));
        return report_fd(syscall(SYS_openat, AT_FDCWD, buf, O_RDONLY));
    }
    if (!strcmp(a, "signal_parent")) // kill(parent, 0): may it signal the broker?
        return report(syscall(SYS_kill, getppid(), 0));
    if (!strcmp(a, "ppid_fds")) { // every /proc/<parent>/fd/N, N < 64: the ones that open
        int got = 0;
        for (int n = 0; n < 64; n++) {
            snprintf(buf, sizeof buf, "/proc/%d/fd/%d", (int)getppid(), n);
            int fd = syscall(SYS_openat, AT_FDCWD, buf, O_RDONLY | O_NONBLOCK);
            if (fd >= 0) {
                syscall(SYS_fstat, fd, &st);
                printf("%sfd %llu %llu", got ? " " : "ok ", (unsigned long long)st.st_dev,
                       (unsigned long long)st.st_ino);
                got++;
                close(fd);
            }
        }
        if (!got) printf("err %d", errno);
        printf("\n");
        return 0;
    }
    if (!strcmp(a, "readpid")) { // readpid PATH: the Pid: line of a status file
        thread_readpid((void *)ARG(2));
        return 0;
    }
    if (!strcmp(a, "thread_readpid")) { // the same from a second thread
        pthread_t t;
        pthread_create(&t, NULL, thread_readpid, (void *)ARG(2));
        pthread_join(t, NULL);
        return 0;
    }
    if (!strcmp(a, "cwd_race")) // cwd_race DIR_A DIRFD_B NAME ROUNDS
        return cwd_race(ARG(2), atoi(ARG(3)), ARG(4), atol(ARG(5)));
    if (!strcmp(a, "race")) // race INSIDE OUTSIDE ROUNDS
        return race(ARG(2), ARG(3), atol(ARG(4)));
    if (!strcmp(a, "uring"))
        return uring_openat(ARG(2));
    if (!strcmp(a, "mkhandle"))
        return mkhandle(ARG(2));
    if (!strcmp(a, "byhandle")) // byhandle DIRSPEC TYPE HEX
        return byhandle(ARG(2), ARG(3), ARG(4));
    if (!strcmp(a, "int80"))
        return int80_open(ARG(2));
    if (!strcmp(a, "x32"))
        return x32_openat(ARG(2));
    if (!strcmp(a, "exec_sh")) {
        char *args[] = {"sh", "-c", "echo exec-ok", NULL};
        syscall(SYS_execve, "/bin/sh", args, environ);
        printf("err %d\n", errno);
        return 0;
    }
    if (!strcmp(a, "execveat")) { // execveat FILE ARGS...: the file opened (through the broker), then run by its fd
        int fd = syscall(SYS_openat, AT_FDCWD, ARG(2), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            printf("err-open %d\n", errno);
            return 0;
        }
        syscall(SYS_execveat, fd, "", argv + 2, environ, AT_EMPTY_PATH);
        printf("err %d\n", errno);
        return 0;
    }
    if (!strcmp(a, "memfd_exec")) { // memfd_exec FILE ARGS...: FILE's bytes copied into a memfd, run from there
        int fd = syscall(SYS_openat, AT_FDCWD, ARG(2), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            printf("err-open %d\n", errno);
            return 0;
        }
        int m = syscall(SYS_memfd_create, "payload", 0);
        if (m < 0) return report(-1);
        char chunk[65536];
        ssize_t n;
        while ((n = read(fd, chunk, sizeof chunk)) > 0)
            if (write(m, chunk, n) != n) return report(-1);
        syscall(SYS_execveat, m, "", argv + 2, environ, AT_EMPTY_PATH);
        printf("err %d\n", errno);
        return 0;
    }
    if (!strcmp(a, "listener"))
        return own_listener();
    if (!strcmp(a, "thread_open")) {
        pthread_t t;
        pthread_create(&t, NULL, thread_open, (void *)ARG(2));
        pthread_join(t, NULL);
        return 0;
    }
    if (!strcmp(a, "fork_open")) { // the child (filter inherited) opens; it reports
        pid_t c = fork();
        if (c == 0) {
            report_fd(syscall(SYS_openat, AT_FDCWD, ARG(2), O_RDONLY));
            _exit(0);
        }
        waitpid(c, NULL, 0);
        return 0;
    }
    if (!strcmp(a, "vfork_open")) { // CLONE_VM|CLONE_VFORK child opens; parent reports
        static char stack[65536];
        pid_t c = clone(child_open, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, (void *)ARG(2));
        if (c < 0) return report(-1);
        waitpid(c, NULL, 0);
        if (shared_result[0] < 0) {
            printf("err %d\n", -shared_result[0]);
            return 0;
        }
        printf("ok ino %d\n", shared_result[1]);
        return 0;
    }
    if (!strcmp(a, "ptrace"))
        return fork_child_for(do_ptrace);
    if (!strcmp(a, "vm_readv"))
        return fork_child_for(do_vm_readv);
    if (!strcmp(a, "vm_writev"))
        return fork_child_for(do_vm_writev);
    if (!strcmp(a, "pidfd_getfd")) { // pidfd_getfd PARENT_FD_NUMBER: steal the parent's fd
        int pfd = syscall(SYS_pidfd_open, getppid(), 0);
        if (pfd < 0) {
            printf("err-pidfd %d\n", errno);
            return 0;
        }
        return report_fd(syscall(SYS_pidfd_getfd, pfd, atoi(ARG(2)), 0));
    }
    if (!strcmp(a, "open_tree")) { // open_tree DIR REL: a detached mount, then a file beneath it
        int t = syscall(SYS_open_tree, AT_FDCWD, ARG(2), OPEN_TREE_CLONE | O_CLOEXEC);
        if (t < 0) return report(-1);
        return report_fd(syscall(SYS_openat, t, ARG(3), O_RDONLY));
    }
    if (!strcmp(a, "fsopen"))
        return report(syscall(SYS_fsopen, "tmpfs", 0));
    if (!strcmp(a, "inotify")) { // a watch on a path: its events name files
        int in = syscall(SYS_inotify_init1, IN_CLOEXEC);
        if (in < 0) return report(-1);
        return report(syscall(SYS_inotify_add_watch, in, ARG(2), IN_ALL_EVENTS));
    }
    if (!strcmp(a, "fanotify")) {
        int fan = syscall(SYS_fanotify_init, FAN_CLASS_NOTIF | FAN_CLOEXEC, O_RDONLY);
        if (fan < 0) {
            printf("err-init %d\n", errno);
            return 0;
        }
        return report(syscall(SYS_fanotify_mark, fan, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, ARG(2)));
    }
    if (!strcmp(a, "chroot"))
        return report(syscall(SYS_chroot, ARG(2)));

    // --- changes to the file system ---
    if (!strcmp(a, "mkdir"))
        return report(syscall(SYS_mkdir, ARG(2), 0700));
    if (!strcmp(a, "unlink"))
        return report(syscall(SYS_unlink, ARG(2)));
    if (!strcmp(a, "rename"))
        return report(syscall(SYS_rename, ARG(2), ARG(3)));
    if (!strcmp(a, "truncate"))
        return report(syscall(SYS_truncate, ARG(2), 0));
    if (!strcmp(a, "link"))
        return report(syscall(SYS_link, ARG(2), ARG(3)));
    if (!strcmp(a, "symlink"))
        return report(syscall(SYS_symlink, ARG(2), ARG(3)));
    if (!strcmp(a, "mknod"))
        return report(syscall(SYS_mknod, ARG(2), S_IFIFO | 0600, 0));
    if (!strcmp(a, "chmod"))
        return report(syscall(SYS_chmod, ARG(2), 0777));
    if (!strcmp(a, "chown"))
        return report(syscall(SYS_chown, ARG(2), 0, 0));
    if (!strcmp(a, "utimes"))
        return report(syscall(SYS_utimes, ARG(2), NULL));
    if (!strcmp(a, "setxattr"))
        return report(syscall(SYS_setxattr, ARG(2), "user.openhook", "x", 1, 0));
    if (!strcmp(a, "chdir"))
        return report(syscall(SYS_chdir, ARG(2)));
    if (!strcmp(a, "bind"))
        return unix_sock(ARG(2), 1);
    if (!strcmp(a, "connect"))
        return unix_sock(ARG(2), 0);

    // --- information about paths ---
    if (!strcmp(a, "stat"))
        return report(syscall(SYS_stat, ARG(2), &st));
    if (!strcmp(a, "lstat"))
        return report(syscall(SYS_lstat, ARG(2), &st));
    if (!strcmp(a, "newfstatat"))
        return report(syscall(SYS_newfstatat, AT_FDCWD, ARG(2), &st, 0));
    if (!strcmp(a, "statx")) {
        char sx[256];
        return report(syscall(SYS_statx, AT_FDCWD, ARG(2), 0, 0x7ff, sx));
    }
    if (!strcmp(a, "access"))
        return report(syscall(SYS_access, ARG(2), R_OK));
    if (!strcmp(a, "faccessat2"))
        return report(syscall(SYS_faccessat2, AT_FDCWD, ARG(2), R_OK, 0));
    if (!strcmp(a, "readlink"))
        return report(syscall(SYS_readlink, ARG(2), buf, sizeof buf));
    if (!strcmp(a, "statfs")) {
        struct statfs sf;
        return report(syscall(SYS_statfs, ARG(2), &sf));
    }
    if (!strcmp(a, "getxattr"))
        return report(syscall(SYS_getxattr, ARG(2), "user.openhook", buf, sizeof buf));
    if (!strcmp(a, "listxattr"))
        return report(syscall(SYS_listxattr, ARG(2), buf, sizeof buf));
    if (!strcmp(a, "stat_ino")) { // stat PATH and print its inode (served stat must be the real one)
        if (syscall(SYS_newfstatat, AT_FDCWD, ARG(2), &st, 0) != 0) return report(-1);
        printf("ok ino %llu\n", (unsigned long long)st.st_ino);
        return 0;
    }
    if (!strcmp(a, "edge_open")) { // edge_open PATH end|cross|unterminated|long: the name placed at a page edge
        long pg = sysconf(_SC_PAGESIZE);
        char *m = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return report(-1);
        const char *path = ARG(2), *mode = ARG(3);
        size_t n = strlen(path) + 1;
        char *name;
        if (!strcmp(mode, "end")) { // the NUL is the last byte before an unmapped page
            mprotect(m + 2 * pg, pg, PROT_NONE);
            name = m + 2 * pg - n;
            memcpy(name, path, n);
        } else if (!strcmp(mode, "cross")) { // the name spans two mapped pages
            name = m + pg - n / 2;
            memcpy(name, path, n);
        } else if (!strcmp(mode, "unterminated")) { // no NUL before the unmapped page
            mprotect(m + 2 * pg, pg, PROT_NONE);
            name = m + 2 * pg - (n - 1);
            memcpy(name, path, n - 1);
        } else { // long: PATH padded with "/./" to 4096 bytes and more (ENAMETOOLONG)
            name = m;
            size_t off = 0;
            while (off + 3 < (size_t)(2 * pg) - n) {
                memcpy(name + off, "/./", 3);
                off += 2;
            }
            memcpy(name + off, path, n);
        }
        return report_fd(syscall(SYS_openat, AT_FDCWD, name, O_RDONLY));
    }
    // --- serving under load ---
    if (!strcmp(a, "threads"))
        return threads(atoi(ARG(2)), atol(ARG(3)), ARG(4), ARG(5));
    if (!strcmp(a, "fifo"))
        return fifo_then_open(ARG(2), ARG(3));
    if (!strcmp(a, "connect_block"))
        return connect_block(ARG(2), atoi(ARG(3)), ARG(4));
    if (!strcmp(a, "churn"))
        return churn(atol(ARG(2)), ARG(3));
    if (!strcmp(a, "orphan")) { // orphan PATH [wait]: a child opens PATH after its parent (the program) has exited
        pid_t grandparent = getppid(); // under the broker: the broker
        int wait_gone = argc > 3 && !strcmp(argv[3], "wait");
        if (fork() == 0) {
            usleep(100000);
            // With "wait": until the program's own parent is gone too
            // (kill(pid, 0) says ESRCH once it is; EPERM while it lives).
            for (int i = 0; wait_gone && i < 3000; i++) {
                if (syscall(SYS_kill, grandparent, 0) < 0 && errno == ESRCH) break;
                usleep(10000);
            }
            report_fd(syscall(SYS_openat, AT_FDCWD, ARG(2), O_RDONLY));
            _exit(0);
        }
        return 0;
    }
    // --- the launch contract ---
    if (!strcmp(a, "exit"))
        return atoi(ARG(2));
    if (!strcmp(a, "raise")) {
        kill(getpid(), atoi(ARG(2)));
        return 0;
    }
    if (!strcmp(a, "wait")) { // prints `ready`, then waits for a signal
        printf("ready\n");
        for (;;) pause();
    }
    if (!strcmp(a, "fds")) { // the open fd numbers below 1024
        printf("ok");
        for (int n = 0; n < 1024; n++)
            if (fcntl(n, F_GETFD) >= 0) printf(" %d", n);
        printf("\n");
        return 0;
    }
    fprintf(stderr, "unknown attempt %s\n", a);
    return 2;
}
