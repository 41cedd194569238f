/*
 * The C request generator for scripts/memtest (--client c; was scripts/heapcheck's client):
 *
 *   memclient <dir> <id>
 *
 * Loops until killed over its own directory <dir>/c<id>: LOOKUP/GETATTR (stat), OPEN, WRITE, READ,
 * FLUSH/RELEASE (close), and every 4th round a CREATE + FLUSH + RELEASE + UNLINK of a scratch
 * file: about ten requests a round, with little client time between them, so the daemon's hot path
 * is what runs. Same protocol as memclient.ts: {"ready":true} once set up; any error is printed as
 * {"error":"ECODE","op":"..."} and ends the process with status 1.
 */
#define _GNU_SOURCE /* strerrorname_np */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *op = "setup";

static int fail(void) {
  const char *name = strerrorname_np(errno);
  printf("{\"error\":\"%s\",\"op\":\"%s\"}\n", name ? name : "EIO", op);
  fflush(stdout);
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: memclient <dir> <id>\n"); return 2; }
  char dir[4096], path[4200], tmp[4200], buf[4096];
  struct stat st;
  memset(buf, atoi(argv[2]) + 1, sizeof buf);
  snprintf(dir, sizeof dir, "%s/c%s", argv[1], argv[2]);
  snprintf(path, sizeof path, "%s/file", dir);
  snprintf(tmp, sizeof tmp, "%s/scratch", dir);
  if (mkdir(dir, 0755) && errno != EEXIST) return fail();
  int fd = open(path, O_CREAT | O_RDWR, 0644);
  if (fd < 0) return fail();
  close(fd);
  printf("{\"ready\":true}\n");
  fflush(stdout);
  for (long i = 0;; i++) {
    off_t at = (i % 64) * 4096;
    op = "stat";
    if (stat(path, &st)) return fail();
    op = "open";
    fd = open(path, O_RDWR);
    if (fd < 0) return fail();
    op = "write";
    if (pwrite(fd, buf, sizeof buf, at) != sizeof buf) return fail();
    op = "read";
    if (pread(fd, buf, sizeof buf, at) != sizeof buf) return fail();
    op = "close";
    if (close(fd)) return fail();
    if (i % 4 == 0) {
      op = "create";
      fd = open(tmp, O_CREAT | O_WRONLY | O_TRUNC, 0644);
      if (fd < 0) return fail();
      close(fd);
      op = "unlink";
      if (unlink(tmp)) return fail();
    }
  }
}
