/* sl_outfile_*: output files written like the shell's `> FILE` (devices and FIFOs written into, links followed),
 * regular files replaced whole, and every write error kept and reported. */
#include "sluice/outfile.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static char s_dir[64]; /* a mkdtemp directory under /tmp */

static char *s_path(char *buf, const char *name) {
    snprintf(buf, PATH_MAX, "%s/%s", s_dir, name);
    return buf;
}

static void s_put(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ASSERT_TRUE(f != NULL);
    fputs(text, f);
    ASSERT_INT_EQ(fclose(f), 0);
}

static void s_read(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    ASSERT_TRUE(f != NULL);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Entries of s_dir other than "." and "..": no temp file may be left behind. */
static int s_entries(void) {
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", s_dir);
    FILE *p = popen(cmd, "r");
    ASSERT_TRUE(p != NULL);
    int n = -1;
    ASSERT_INT_EQ(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

static int s_write(const char *path, sl_outfile_mode mode, const char *text) {
    sl_outfile *f = NULL;
    int rc = sl_outfile_open(path, mode, "the test file", &f);
    if (rc < 0)
        return rc;
    fputs(text, sl_outfile_stream(f));
    return sl_outfile_close(f);
}

static void test_new_and_replaced(void) {
    char p[PATH_MAX], buf[256];
    mode_t old = umask(027);
    ASSERT_INT_EQ(s_write(s_path(p, "new.json"), SL_OUTFILE_REPLACE, "one\n"), 0);
    umask(old);
    s_read(p, buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "one\n");
    struct stat st;
    ASSERT_INT_EQ(stat(p, &st), 0);
    ASSERT_INT_EQ(st.st_mode & 07777, 0640); /* 0666 minus the umask, like a file the shell creates */
    /* Replaced whole: another inode, the old file's mode kept, no temp file left. */
    ASSERT_INT_EQ(chmod(p, 0604), 0);
    ino_t ino = st.st_ino;
    ASSERT_INT_EQ(s_write(p, SL_OUTFILE_REPLACE, "two\n"), 0);
    s_read(p, buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "two\n");
    ASSERT_INT_EQ(stat(p, &st), 0);
    ASSERT_TRUE(st.st_ino != ino);
    ASSERT_INT_EQ(st.st_mode & 07777, 0604);
    ASSERT_INT_EQ(s_entries(), 1);
    /* Streamed: written in place, truncated first. */
    ASSERT_INT_EQ(s_write(p, SL_OUTFILE_STREAM, "3\n"), 0);
    s_read(p, buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "3\n");
    ASSERT_INT_EQ(stat(p, &st), 0);
    ASSERT_INT_EQ(unlink(p), 0);
}

static void test_symlinks_followed(void) {
    char link[PATH_MAX], target[PATH_MAX], buf[256];
    ASSERT_INT_EQ(mkdir(s_path(target, "elsewhere"), 0755), 0);
    s_put(s_path(target, "elsewhere/real.svg"), "old");
    ASSERT_INT_EQ(symlink("elsewhere/real.svg", s_path(link, "link.svg")), 0);
    ASSERT_INT_EQ(s_write(link, SL_OUTFILE_REPLACE, "<svg/>"), 0);
    struct stat st;
    ASSERT_INT_EQ(lstat(link, &st), 0);
    ASSERT_TRUE(S_ISLNK(st.st_mode)); /* the link stays a link */
    s_read(target, buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "<svg/>"); /* its target got the bytes */
    /* A dangling link: its target is created, as `> link` does. */
    ASSERT_INT_EQ(symlink("elsewhere/created.json", s_path(link, "dangling")), 0);
    ASSERT_INT_EQ(s_write(link, SL_OUTFILE_REPLACE, "{}"), 0);
    s_read(s_path(target, "elsewhere/created.json"), buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "{}");
    ASSERT_INT_EQ(lstat(link, &st), 0);
    ASSERT_TRUE(S_ISLNK(st.st_mode));
    /* A chain of links, with no temp file left in either directory. */
    ASSERT_INT_EQ(symlink("link.svg", s_path(link, "chain")), 0);
    ASSERT_INT_EQ(s_write(link, SL_OUTFILE_STREAM, "streamed"), 0);
    s_read(s_path(target, "elsewhere/real.svg"), buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "streamed");
    ASSERT_INT_EQ(s_entries(), 4);
    unlink(s_path(link, "chain"));
    unlink(s_path(link, "dangling"));
    unlink(s_path(link, "link.svg"));
    unlink(s_path(target, "elsewhere/created.json"));
    unlink(s_path(target, "elsewhere/real.svg"));
    ASSERT_INT_EQ(rmdir(s_path(target, "elsewhere")), 0);
}

/* A character device to write to: a node of our own with the numbers of /dev/null or /dev/full where we may make
 * one (as root: a mistake then replaces our node, never the machine's), the system's node where we could not replace
 * it anyway (not root). NULL when neither is safe. */
static const char *s_device(char *buf, const char *name, unsigned minor, const char *system_path) {
    s_path(buf, name);
    if (mknod(buf, S_IFCHR | 0666, makedev(1, minor)) == 0) {
        int fd = open(buf, O_WRONLY);
        if (fd >= 0) {
            close(fd);
            return buf;
        }
        unlink(buf); /* a file system mounted nodev */
    }
    return geteuid() != 0 ? system_path : NULL;
}

static void *s_fifo_reader(void *arg) {
    static char got[256];
    s_read(arg, got, sizeof(got));
    return got;
}

static void test_devices_and_fifos_written_into(void) {
    char null_buf[PATH_MAX], full_buf[PATH_MAX];
    const char *null = s_device(null_buf, "null", 3, "/dev/null");
    const char *full = s_device(full_buf, "full", 7, "/dev/full");
    struct stat st;
    if (null && full) {
        /* /dev/null stays a character device (a chart or report never replaces it). */
        ASSERT_INT_EQ(s_write(null, SL_OUTFILE_REPLACE, "x"), 0);
        ASSERT_INT_EQ(stat(null, &st), 0);
        ASSERT_TRUE(S_ISCHR(st.st_mode));
        /* /dev/full: every write fails with ENOSPC, and that is what is reported (at close, or at a flush). */
        ASSERT_INT_EQ(s_write(full, SL_OUTFILE_REPLACE, "x"), SL_ENOSPC);
        ASSERT_TRUE(strstr(sl_last_error(), "cannot write the test file ") != NULL);
        ASSERT_TRUE(strstr(sl_last_error(), ": No space left on device") != NULL);
        sl_outfile *f = NULL;
        ASSERT_INT_EQ(sl_outfile_open(full, SL_OUTFILE_STREAM, "the log", &f), 0);
        fputs("line\n", sl_outfile_stream(f));
        ASSERT_INT_EQ(sl_outfile_flush(f), SL_ENOSPC);
        fputs("more\n", sl_outfile_stream(f));
        ASSERT_INT_EQ(sl_outfile_flush(f), SL_ENOSPC); /* the first error, every time */
        ASSERT_INT_EQ(sl_outfile_close(f), SL_ENOSPC);
        ASSERT_TRUE(strstr(sl_last_error(), "cannot write the log ") != NULL);
        ASSERT_INT_EQ(stat(full, &st), 0);
        ASSERT_TRUE(S_ISCHR(st.st_mode));
    } else {
        printf("  (root, and no device node can be made here: the /dev/null and /dev/full cases are skipped)\n");
    }
    if (null == null_buf)
        unlink(null_buf);
    if (full == full_buf)
        unlink(full_buf);
    /* A FIFO's reader gets the bytes; the FIFO stays. */
    char fifo[PATH_MAX];
    ASSERT_INT_EQ(mkfifo(s_path(fifo, "fifo"), 0600), 0);
    pthread_t t;
    ASSERT_INT_EQ(pthread_create(&t, NULL, s_fifo_reader, fifo), 0);
    ASSERT_INT_EQ(s_write(fifo, SL_OUTFILE_REPLACE, "through the fifo"), 0);
    void *got;
    pthread_join(t, &got);
    ASSERT_STR_EQ(got, "through the fifo");
    ASSERT_INT_EQ(lstat(fifo, &st), 0);
    ASSERT_TRUE(S_ISFIFO(st.st_mode));
    ASSERT_INT_EQ(unlink(fifo), 0);
}

static void test_checks_and_failures(void) {
    char p[PATH_MAX];
    ASSERT_INT_EQ(sl_outfile_check("", SL_OUTFILE_REPLACE, "--report"), SL_EINVAL);
    ASSERT_INT_EQ(sl_outfile_check(s_dir, SL_OUTFILE_REPLACE, "--report"), SL_EISDIR);
    ASSERT_TRUE(strstr(sl_last_error(), "is a directory") != NULL);
    ASSERT_INT_EQ(sl_outfile_check(s_path(p, "no/such/dir/r.json"), SL_OUTFILE_REPLACE, "--report"), SL_ENOENT);
    ASSERT_TRUE(strstr(sl_last_error(), "cannot write --report ") != NULL);
    ASSERT_TRUE(strstr(sl_last_error(), "no/such/dir") != NULL);
    ASSERT_INT_EQ(sl_outfile_check(s_path(p, "new/"), SL_OUTFILE_STREAM, "--report"), SL_EISDIR);
    ASSERT_INT_EQ(sl_outfile_check(s_path(p, "fine.json"), SL_OUTFILE_REPLACE, "--report"), 0);
    ASSERT_INT_EQ(sl_outfile_check("/dev/null", SL_OUTFILE_STREAM, "--report"), 0);
    s_put(s_path(p, "file"), "x");
    ASSERT_INT_EQ(sl_outfile_check(s_path(p, "file/r.json"), SL_OUTFILE_REPLACE, "--report"), SL_ENOTDIR);
    /* A failed write leaves what was there as it was: the old report, no temp file. */
    sl_outfile *f = NULL;
    ASSERT_INT_EQ(sl_outfile_open(s_path(p, "file"), SL_OUTFILE_REPLACE, "the report", &f), 0);
    fputs("half", sl_outfile_stream(f));
    sl_outfile_discard(f);
    char buf[64];
    s_read(p, buf, sizeof(buf));
    ASSERT_STR_EQ(buf, "x");
    ASSERT_INT_EQ(s_entries(), 1);
    ASSERT_INT_EQ(unlink(p), 0);
    ASSERT_INT_EQ(sl_outfile_close(NULL), 0);
    sl_outfile_discard(NULL);
}

int main(void) {
    char tmpl[] = "/tmp/sl_test_outfile.XXXXXX";
    ASSERT_TRUE(mkdtemp(tmpl) != NULL);
    snprintf(s_dir, sizeof(s_dir), "%s", tmpl);
    RUN_TEST(test_new_and_replaced);
    RUN_TEST(test_symlinks_followed);
    RUN_TEST(test_devices_and_fifos_written_into);
    RUN_TEST(test_checks_and_failures);
    ASSERT_INT_EQ(rmdir(s_dir), 0);
    TEST_DONE();
}
