/*
 * fsops: the metadata loops of scripts/bench (M-workloads), compiled at run time with gcc so the
 * client costs next to nothing per operation. Each mode times its loop with CLOCK_MONOTONIC, samples
 * every operation's latency, and prints one JSON line:
 *   {"ops":N,"ns":ELAPSED,"p50_ns":..,"p99_ns":..,"max_ns":..}
 * Any failing system call ends the program with exit status 1 and a message naming it.
 *
 *   fsops stat1    FILE N             stat() one file N times (by path: the walk adds the
 *                                     permission checks of the directories on the way)
 *   fsops fstat1   FILE N [SEC]       fstat() of one open file N times (one GETATTR each with
 *                                     attr_timeout=0, whatever default_permissions does); with
 *                                     SEC > 0, stop early once SEC seconds have passed
 *   fsops mktree   DIR D F            create D directories of F empty files (DIR/dI/fJ)
 *   fsops stattree DIR D F            stat() each file of such a tree once
 *   fsops create   DIR N T            create+close N files (openat on the directory's descriptor);
 *                                     T=1: in DIR, T>1: T threads, each in its private DIR/tK
 *                                     (created here, untimed)
 *   fsops unlink   DIR N T            unlink the files made by `create DIR N T`
 *   fsops statn    DIR N              fstatat() each of the N files made by `create DIR N 1`
 *   fsops openn    DIR N              open(O_RDONLY)+close each of those N files
 *   fsops procs    K DIR N            K processes at once, each in its own DIR/pI (created and
 *                                     removed here, untimed): create+close, stat, unlink N files;
 *                                     ops = 3·N·K, timed from their common start to the last exit
 *   fsops untar    K TARBALL DIR      K processes at once, each running `tar -xf TARBALL -C
 *                                     DIR/pI` (DIR/pI created here); ops = K, timed likewise
 *   fsops readdir  DIR P              read the whole directory P times (getdents64)
 *   fsops write    FILE KIB BS        write KIB KiB to FILE (created/truncated) in BS-byte
 *                                     write()s, then fsync and close (both timed); ops = writes
 *   fsops read     FILE BS            open FILE and read it to the end in BS-byte read()s
 *                                     (open and close timed); ops = reads
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, const char *path) {
  fprintf(stderr, "fsops: %s %s: %s\n", what, path ? path : "", strerror(errno));
  exit(1);
}

static long num(const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == 0 || *end != 0 || v < 0) {
    fprintf(stderr, "fsops: bad number '%s'\n", s);
    exit(2);
  }
  return v;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Latencies are kept in microsecond-resolution-safe uint32 nanoseconds (capped at ~4.29 s). */
static uint32_t clamp32(uint64_t v) { return v > 0xffffffffull ? 0xffffffffu : (uint32_t)v; }

static void report(uint64_t ops, uint64_t ns, uint32_t *lat, size_t n) {
  uint64_t p50 = 0, p99 = 0, max = 0;
  if (n > 0) {
    qsort(lat, n, sizeof *lat, cmp_u32);
    p50 = lat[(n - 1) / 2];
    p99 = lat[(size_t)((n - 1) * 0.99)];
    max = lat[n - 1];
  }
  printf("{\"ops\":%llu,\"ns\":%llu,\"p50_ns\":%llu,\"p99_ns\":%llu,\"max_ns\":%llu}\n", (unsigned long long)ops,
         (unsigned long long)ns, (unsigned long long)p50, (unsigned long long)p99, (unsigned long long)max);
}

static uint32_t *alloc_lat(size_t n) {
  uint32_t *p = malloc((n ? n : 1) * sizeof *p);
  if (!p) die("malloc", "");
  /* touch the pages now, not inside the timed loop */
  memset(p, 0, (n ? n : 1) * sizeof *p);
  return p;
}

/* ---- stat1 ---------------------------------------------------------------------------------- */
static int do_stat1(const char *file, long n) {
  struct stat st;
  uint32_t *lat = alloc_lat(n);
  if (stat(file, &st) != 0) die("stat", file);
  uint64_t t0 = now_ns(), prev = t0;
  for (long i = 0; i < n; i++) {
    if (stat(file, &st) != 0) die("stat", file);
    uint64_t t = now_ns();
    lat[i] = clamp32(t - prev);
    prev = t;
  }
  report(n, prev - t0, lat, n);
  return 0;
}

static int do_fstat1(const char *file, long n, double sec) {
  struct stat st;
  uint32_t *lat = alloc_lat(n);
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open", file);
  uint64_t t0 = now_ns(), prev = t0;
  uint64_t end = sec > 0 ? t0 + (uint64_t)(sec * 1e9) : UINT64_MAX;
  long i = 0;
  for (; i < n; i++) {
    if (fstat(fd, &st) != 0) die("fstat", file);
    uint64_t t = now_ns();
    lat[i] = clamp32(t - prev);
    prev = t;
    if (t >= end) {
      i++;
      break;
    }
  }
  report(i, prev - t0, lat, i);
  close(fd);
  return 0;
}

/* ---- trees ---------------------------------------------------------------------------------- */
static int do_mktree(const char *dir, long d, long f) {
  char path[4096];
  uint64_t t0 = now_ns();
  for (long i = 0; i < d; i++) {
    snprintf(path, sizeof path, "%s/d%04ld", dir, i);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) die("mkdir", path);
    for (long j = 0; j < f; j++) {
      snprintf(path, sizeof path, "%s/d%04ld/f%06ld", dir, i, j);
      int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0) die("create", path);
      close(fd);
    }
  }
  report(d * f, now_ns() - t0, NULL, 0);
  return 0;
}

/* Like `find`/`ls -l`: each directory opened once, its files stat()ed relative to it. */
static int do_stattree(const char *dir, long d, long f) {
  char path[64];
  struct stat st;
  size_t n = (size_t)(d * f);
  uint32_t *lat = alloc_lat(n);
  int top = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (top < 0) die("open", dir);
  uint64_t t0 = now_ns(), prev = t0;
  size_t k = 0;
  for (long i = 0; i < d; i++) {
    snprintf(path, sizeof path, "d%04ld", i);
    int dfd = openat(top, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) die("open", path);
    for (long j = 0; j < f; j++) {
      snprintf(path, sizeof path, "f%06ld", j);
      if (fstatat(dfd, path, &st, AT_SYMLINK_NOFOLLOW) != 0) die("stat", path);
      uint64_t t = now_ns();
      lat[k++] = clamp32(t - prev);
      prev = t;
    }
    close(dfd);
  }
  report(n, prev - t0, lat, n);
  return 0;
}

/* ---- create / unlink, optionally in threads ------------------------------------------------- */
struct job {
  char dir[4096];
  int dfd; /* the directory, opened once: names are resolved relative to it, like tar or cp do */
  long n;
  int unlink_mode;
  uint32_t *lat;
  pthread_barrier_t *barrier;
};

static void *run_job(void *arg) {
  struct job *j = arg;
  char name[32];
  if (j->barrier) pthread_barrier_wait(j->barrier);
  uint64_t prev = now_ns();
  for (long i = 0; i < j->n; i++) {
    snprintf(name, sizeof name, "f%06ld", i);
    if (j->unlink_mode) {
      if (unlinkat(j->dfd, name, 0) != 0) die("unlink", name);
    } else {
      int fd = openat(j->dfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0) die("create", name);
      if (close(fd) != 0) die("close", name);
    }
    uint64_t t = now_ns();
    j->lat[i] = clamp32(t - prev);
    prev = t;
  }
  return NULL;
}

static int do_files(const char *dir, long n, long threads, int unlink_mode) {
  if (threads < 1 || threads > 64) {
    fprintf(stderr, "fsops: threads must be 1..64\n");
    return 2;
  }
  uint32_t *lat = alloc_lat(n);
  struct job jobs[64];
  pthread_t tids[64];
  pthread_barrier_t barrier;
  long per = n / threads, done = 0;
  for (long k = 0; k < threads; k++) {
    struct job *j = &jobs[k];
    j->n = k == threads - 1 ? n - done : per;
    j->lat = lat + done;
    j->unlink_mode = unlink_mode;
    j->barrier = threads > 1 ? &barrier : NULL;
    done += j->n;
    if (threads == 1) snprintf(j->dir, sizeof j->dir, "%s", dir);
    else {
      snprintf(j->dir, sizeof j->dir, "%s/t%ld", dir, k);
      if (!unlink_mode && mkdir(j->dir, 0755) != 0 && errno != EEXIST) die("mkdir", j->dir);
    }
    j->dfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dfd < 0) die("open", j->dir);
  }
  uint64_t t0;
  if (threads == 1) {
    t0 = now_ns();
    run_job(&jobs[0]);
  } else {
    pthread_barrier_init(&barrier, NULL, (unsigned)threads + 1);
    for (long k = 0; k < threads; k++)
      if (pthread_create(&tids[k], NULL, run_job, &jobs[k]) != 0) die("pthread_create", "");
    t0 = now_ns();
    pthread_barrier_wait(&barrier);
    for (long k = 0; k < threads; k++) pthread_join(tids[k], NULL);
  }
  uint64_t ns = now_ns() - t0;
  for (long k = 0; k < threads; k++) close(jobs[k].dfd);
  if (unlink_mode && threads > 1)
    for (long k = 0; k < threads; k++)
      if (rmdir(jobs[k].dir) != 0) die("rmdir", jobs[k].dir);
  report(n, ns, lat, n);
  return 0;
}

/* ---- stat / open+close of existing files ---------------------------------------------------- */
static int do_each(const char *dir, long n, int open_mode) {
  char name[32];
  struct stat st;
  uint32_t *lat = alloc_lat(n);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) die("open", dir);
  uint64_t t0 = now_ns(), prev = t0;
  for (long i = 0; i < n; i++) {
    snprintf(name, sizeof name, "f%06ld", i);
    if (open_mode) {
      int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
      if (fd < 0) die("open", name);
      if (close(fd) != 0) die("close", name);
    } else if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
      die("stat", name);
    uint64_t t = now_ns();
    lat[i] = clamp32(t - prev);
    prev = t;
  }
  close(dfd);
  report(n, prev - t0, lat, n);
  return 0;
}

/* ---- parallel callers: K processes released at once ----------------------------------------- */
/* Forks K children; each runs `child(i)` once the parent has seen all K ready and closes the
 * release pipe. Returns the ns from the release to the last child's exit; any child failing
 * (exit status != 0) ends the program with status 1. */
static uint64_t fan_out(long k, void (*child)(long i, void *arg), void *arg) {
  int go[2], ready[2];
  if (pipe(go) != 0 || pipe(ready) != 0) die("pipe", "");
  pid_t pids[64];
  for (long i = 0; i < k; i++) {
    pid_t p = fork();
    if (p < 0) die("fork", "");
    if (p == 0) {
      char c;
      close(go[1]);
      close(ready[0]);
      if (write(ready[1], "r", 1) != 1) _exit(1);
      /* blocks until the parent closes its end: every child starts at once */
      while (read(go[0], &c, 1) < 0 && errno == EINTR) {}
      child(i, arg);
      _exit(0);
    }
    pids[i] = p;
  }
  close(go[0]);
  close(ready[1]);
  for (long got = 0; got < k;) {
    char buf[64];
    ssize_t r = read(ready[0], buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) die("read", "ready pipe");
    got += r;
  }
  uint64_t t0 = now_ns();
  close(go[1]);
  int failed = 0;
  for (long i = 0; i < k; i++) {
    int st;
    while (waitpid(pids[i], &st, 0) < 0)
      if (errno != EINTR) die("waitpid", "");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) failed = 1;
  }
  uint64_t ns = now_ns() - t0;
  if (failed) {
    fprintf(stderr, "fsops: a caller process failed\n");
    exit(1);
  }
  return ns;
}

struct procs_arg {
  const char *dir;
  long n;
  uint32_t *lat; /* shared with the children: 3·n latencies each */
};

static void procs_child(long i, void *argp) {
  struct procs_arg *a = argp;
  char path[4096], name[32];
  struct stat st;
  snprintf(path, sizeof path, "%s/p%ld", a->dir, i);
  int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) die("open", path);
  uint32_t *lat = a->lat + (size_t)i * 3 * (size_t)a->n;
  uint64_t prev = now_ns();
  for (int phase = 0; phase < 3; phase++)
    for (long j = 0; j < a->n; j++) {
      snprintf(name, sizeof name, "f%06ld", j);
      if (phase == 0) {
        int fd = openat(dfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0) die("create", name);
        if (close(fd) != 0) die("close", name);
      } else if (phase == 1) {
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) die("stat", name);
      } else if (unlinkat(dfd, name, 0) != 0)
        die("unlink", name);
      uint64_t t = now_ns();
      *lat++ = clamp32(t - prev);
      prev = t;
    }
  close(dfd);
}

static int do_procs(long k, const char *dir, long n) {
  char path[4096];
  if (k < 1 || k > 64) {
    fprintf(stderr, "fsops: processes must be 1..64\n");
    return 2;
  }
  size_t total = (size_t)k * 3 * (size_t)n;
  uint32_t *lat = mmap(NULL, (total ? total : 1) * sizeof *lat, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (lat == MAP_FAILED) die("mmap", "");
  memset(lat, 0, (total ? total : 1) * sizeof *lat);
  for (long i = 0; i < k; i++) {
    snprintf(path, sizeof path, "%s/p%ld", dir, i);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) die("mkdir", path);
  }
  struct procs_arg a = {dir, n, lat};
  uint64_t ns = fan_out(k, procs_child, &a);
  for (long i = 0; i < k; i++) {
    snprintf(path, sizeof path, "%s/p%ld", dir, i);
    if (rmdir(path) != 0) die("rmdir", path);
  }
  report(total, ns, lat, total);
  return 0;
}

struct untar_arg {
  const char *tarball, *dir;
};

static void untar_child(long i, void *argp) {
  struct untar_arg *a = argp;
  char path[4096];
  snprintf(path, sizeof path, "%s/p%ld", a->dir, i);
  execlp("tar", "tar", "-xf", a->tarball, "-C", path, (char *)NULL);
  die("exec", "tar");
}

static int do_untar(long k, const char *tarball, const char *dir) {
  char path[4096];
  if (k < 1 || k > 64) {
    fprintf(stderr, "fsops: processes must be 1..64\n");
    return 2;
  }
  for (long i = 0; i < k; i++) {
    snprintf(path, sizeof path, "%s/p%ld", dir, i);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) die("mkdir", path);
  }
  struct untar_arg a = {tarball, dir};
  /* latencies would be per tar run: none reported */
  report(k, fan_out(k, untar_child, &a), NULL, 0);
  return 0;
}

/* ---- readdir -------------------------------------------------------------------------------- */
static int do_readdir(const char *dir, long passes) {
  static char buf[1 << 16];
  uint32_t *lat = alloc_lat(passes);
  uint64_t entries = 0;
  uint64_t t0 = now_ns(), prev = t0;
  for (long p = 0; p < passes; p++) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) die("open", dir);
    for (;;) {
      long got = syscall(SYS_getdents64, fd, buf, sizeof buf);
      if (got < 0) die("getdents64", dir);
      if (got == 0) break;
      for (long off = 0; off < got;) {
        struct dirent64 *d = (struct dirent64 *)(buf + off);
        entries++;
        off += d->d_reclen;
      }
    }
    close(fd);
    uint64_t t = now_ns();
    lat[p] = clamp32(t - prev);
    prev = t;
  }
  /* ops = directory entries returned (., .. included); latencies are per pass */
  report(entries, prev - t0, lat, passes);
  return 0;
}

/* ---- sequential data: write a file, read it back --------------------------------------------- */
static char *alloc_buf(long bs) {
  char *buf = malloc(bs ? bs : 1);
  if (!buf) die("malloc", "");
  for (long i = 0; i < bs; i++) buf[i] = (char)('a' + i % 26); /* not zeros: no store may skip them */
  return buf;
}

static int do_write(const char *file, long kib, long bs) {
  if (bs <= 0) { fprintf(stderr, "fsops: write: BS must be > 0\n"); exit(2); }
  long n = (kib * 1024 + bs - 1) / bs;
  char *buf = alloc_buf(bs);
  uint32_t *lat = alloc_lat(n);
  uint64_t t0 = now_ns(), prev = t0;
  int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die("open", file);
  for (long i = 0; i < n; i++) {
    if (write(fd, buf, bs) != bs) die("write", file);
    uint64_t t = now_ns();
    lat[i] = clamp32(t - prev);
    prev = t;
  }
  if (fsync(fd) != 0) die("fsync", file);
  if (close(fd) != 0) die("close", file);
  report(n, now_ns() - t0, lat, n);
  free(buf);
  return 0;
}

static int do_read(const char *file, long bs) {
  if (bs <= 0) { fprintf(stderr, "fsops: read: BS must be > 0\n"); exit(2); }
  struct stat st;
  if (stat(file, &st) != 0) die("stat", file);
  long cap = st.st_size / bs + 2;
  char *buf = alloc_buf(bs);
  uint32_t *lat = alloc_lat(cap);
  long n = 0;
  uint64_t t0 = now_ns(), prev = t0;
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open", file);
  for (;;) {
    ssize_t got = read(fd, buf, bs);
    if (got < 0) die("read", file);
    if (got == 0) break;
    uint64_t t = now_ns();
    if (n < cap) lat[n] = clamp32(t - prev);
    n++;
    prev = t;
  }
  if (close(fd) != 0) die("close", file);
  report(n, now_ns() - t0, lat, n < cap ? n : cap);
  free(buf);
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 4 && !strcmp(argv[1], "stat1")) return do_stat1(argv[2], num(argv[3]));
  if (argc >= 4 && !strcmp(argv[1], "fstat1")) return do_fstat1(argv[2], num(argv[3]), argc >= 5 ? atof(argv[4]) : 0);
  if (argc >= 5 && !strcmp(argv[1], "mktree")) return do_mktree(argv[2], num(argv[3]), num(argv[4]));
  if (argc >= 5 && !strcmp(argv[1], "stattree")) return do_stattree(argv[2], num(argv[3]), num(argv[4]));
  if (argc >= 5 && !strcmp(argv[1], "create")) return do_files(argv[2], num(argv[3]), num(argv[4]), 0);
  if (argc >= 5 && !strcmp(argv[1], "unlink")) return do_files(argv[2], num(argv[3]), num(argv[4]), 1);
  if (argc >= 4 && !strcmp(argv[1], "readdir")) return do_readdir(argv[2], num(argv[3]));
  if (argc >= 4 && !strcmp(argv[1], "statn")) return do_each(argv[2], num(argv[3]), 0);
  if (argc >= 4 && !strcmp(argv[1], "openn")) return do_each(argv[2], num(argv[3]), 1);
  if (argc >= 5 && !strcmp(argv[1], "procs")) return do_procs(num(argv[2]), argv[3], num(argv[4]));
  if (argc >= 5 && !strcmp(argv[1], "untar")) return do_untar(num(argv[2]), argv[3], argv[4]);
  if (argc >= 5 && !strcmp(argv[1], "write")) return do_write(argv[2], num(argv[3]), num(argv[4]));
  if (argc >= 4 && !strcmp(argv[1], "read")) return do_read(argv[2], num(argv[3]));
  fprintf(stderr, "usage: fsops stat1|fstat1|mktree|stattree|create|unlink|readdir|statn|openn|procs|untar|write|read ... (see the source)\n");
  return 2;
}
