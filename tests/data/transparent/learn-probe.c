// A small unmodified program for `openhook-broker learn`
// (tests/tests/transparent_qemu.rs): built dynamically, so the loader's own
// opens (ld.so.cache, libc) are learned too.
//
//   learn-probe INPUT OUTPUT
//
// Reads INPUT, stats and access()es it, writes it reversed to OUTPUT
// (created, truncated), writes to /dev/null, reads its own Pid: from
// /proc/self/status. Prints one summary line; exits 1 naming the first
// failure.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what, const char *path) {
    printf("learn-probe: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s INPUT OUTPUT\n", argv[0]);
        return 2;
    }
    struct stat st;
    if (stat(argv[1], &st) != 0) die("stat", argv[1]);
    if (access(argv[1], R_OK) != 0) die("access", argv[1]);
    FILE *in = fopen(argv[1], "rb");
    if (!in) die("open", argv[1]);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    FILE *out = fopen(argv[2], "wb");
    if (!out) die("open", argv[2]);
    for (size_t i = 0; i < n; i++) fputc(buf[n - 1 - i], out);
    if (fclose(out) != 0) die("close", argv[2]);
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null < 0 || write(null, buf, n) != (ssize_t)n) die("write", "/dev/null");
    close(null);
    FILE *status = fopen("/proc/self/status", "r");
    if (!status) die("open", "/proc/self/status");
    char line[256];
    long pid = -1;
    while (fgets(line, sizeof line, status))
        if (!strncmp(line, "Pid:", 4)) pid = strtol(line + 4, NULL, 10);
    fclose(status);
    printf("learn-probe: %zu bytes (stat size %lld) reversed; own pid %s\n", n, (long long)st.st_size,
           pid == getpid() ? "ok" : "WRONG");
    return 0;
}
