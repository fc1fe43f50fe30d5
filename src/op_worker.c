/* The worker operation (map --worker): one long-lived process per worker thread, spoken to over its stdin and stdout
 * with the framed protocol of docs/worker-protocol.md.
 *
 * Each worker thread starts its process at its first object (the two hellos), then for every object writes a request
 * (header line, the object's bytes as chunks, an end line) while it reads the answer (chunks, a final line) and the
 * process's stderr, all three pipes non-blocking under one poll(): the object streams through the task's buffer one
 * way and through a fixed read buffer the other, so no object is ever held whole. A process that breaks the protocol,
 * dies or overruns --timeout fails its object alone and is replaced at the next object; consecutive start failures
 * are counted job-wide and stop the job after S_START_FAILURES_MAX. */
#include "child.h"
#include "clock.h"
#include "fail.h"
#include "proc_tree.h"
#include "task.h"
#include "worker_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define S_PROTOCOL_VERSION 1
#define S_LINE_MAX SL__WP_LINE_MAX /* a protocol line, its LF included (§2) */
#define S_RBUF_SIZE (64 * 1024)    /* what is read from the worker's stdout at once */
#define S_POLL_MS 200              /* how often an abort is noticed while waiting */
#define S_TERM_GRACE_MS 2000       /* SIGTERM, then SIGKILL this much later (§6) */
#define S_START_FAILURES_MAX 5     /* consecutive start failures that stop the job (§9) */
#define S_BACKOFF_FIRST_MS 100     /* before the first replacement after a start failure, doubling */
#define S_BACKOFF_MAX_MS 5000

static const char *const s_env_names[] = {"SLUICE_WORKER_ID=", "SLUICE_JOBS="};
#define S_ENV_COUNT (sizeof(s_env_names) / sizeof(s_env_names[0]))

typedef struct s_proc {
    pid_t pid; /* -1: none */
    int in_w, out_r, err_r;
    bool reaped;
    int status;
} s_proc;

/* Per-thread state, made by thread_init and reused for every object; every buffer is fixed or bounded. */
typedef struct s_state {
    const sl__op_config *cfg;
    char **envp; /* environ minus inherited SLUICE_WORKER_ID/SLUICE_JOBS, plus ours */
    char envstr[64];
    s_proc p;
    const sl_object *retry_of; /* the object whose worker ended without answering: its second try */
    bool ready;                /* p is running and has said hello */
    unsigned answered;         /* answers from this process (--worker-max-objects) */
    char what[512];            /* why the last start failed (its reason and stderr excerpt), for the job's last line */
    sl__wp_in in; /* stdout bytes read and not used yet (they belong to the next answer), the line being assembled */
    char *final_text; /* the answer's final line, for its result members */
    char *hdr;        /* the request header line */
    size_t hdr_cap;
    char *collect; /* an output body when DST is "-" */
    size_t collect_len, collect_cap;
    sl__stderr_tail err; /* what the worker wrote on stderr during the current object (or start) */
} s_state;

static bool s_aborted(const sl__op_config *cfg) {
    return cfg->abort && atomic_load(cfg->abort);
}

static void s_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the process ---- */

/* In the child between fork and exec: only async-signal-safe calls. The child leads its own process group (a
 * terminal's Ctrl-C reaches sluice alone, and sluice stops the worker with all it started), dies with the thread that
 * started it (PR_SET_PDEATHSIG: a sluice killed with -9 leaves no worker behind), starts with every signal at its
 * default and none blocked, and keeps no descriptor of sluice's but the three pipes. */
static void s_child(const s_state *st, pid_t parent, int in, int out, int err, int report) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        goto failed;
    if (report != 3) {
        if (dup2(report, 3) < 0)
            goto failed;
        fcntl(3, F_SETFD, FD_CLOEXEC);
    }
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 4u, ~0u, 0u) < 0)
#endif
        for (int fd = 4; fd < 1024; fd++)
            close(fd);
    if (st->cfg->use_shell) {
        const char *sh_argv[] = {"sh", "-c", st->cfg->command, "sluice", NULL};
        execve("/bin/sh", (char *const *)sh_argv, st->envp);
    } else {
        execvpe(st->cfg->argv[0], (char *const *)st->cfg->argv, st->envp);
    }
failed:;
    int e = errno;
    ssize_t w = write(3, &e, sizeof(e));
    (void)w;
    _exit(127);
}

/* Starts the process. Returns 0, or <0 with `why` saying what failed. */
static int s_spawn(s_state *st, char *why, size_t why_cap) {
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, rep[2] = {-1, -1};
    s_proc *p = &st->p;
    *p = (s_proc){.pid = -1, .in_w = -1, .out_r = -1, .err_r = -1};
    if (sl__pipe_cloexec(in) < 0 || sl__pipe_cloexec(out) < 0 || sl__pipe_cloexec(err) < 0 ||
        sl__pipe_cloexec(rep) < 0 || sl__fd_nonblocking(in[1]) < 0 || sl__fd_nonblocking(out[0]) < 0 ||
        sl__fd_nonblocking(err[0]) < 0) {
        snprintf(why, why_cap, "cannot set up the worker's pipes: %s", sl__errno_text(errno));
        goto on_error;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, why_cap, "cannot start the worker: %s", sl__errno_text(errno));
        goto on_error;
    }
    if (pid == 0)
        s_child(st, parent, in[0], out[1], err[1], rep[1]);
    /* The child's group, set on both sides: a signal sent before the child ran setpgid still reaches it. */
    setpgid(pid, pid);
    sl__fd_close(&rep[1]);
    int e = 0;
    ssize_t n;
    while ((n = read(rep[0], &e, sizeof(e))) < 0 && errno == EINTR) {
    }
    sl__fd_close(&rep[0]);
    sl__fd_close(&in[0]);
    sl__fd_close(&out[1]);
    sl__fd_close(&err[1]);
    p->pid = pid;
    p->in_w = in[1];
    p->out_r = out[0];
    p->err_r = err[0];
    if (n == (ssize_t)sizeof(e)) {
        snprintf(why, why_cap, "cannot run '%s': %s", st->cfg->use_shell ? "/bin/sh" : st->cfg->argv[0],
                 sl__errno_text(e));
        return SL_ECHILD;
    }
    return 0;
on_error:
    for (int i = 0; i < 2; i++) {
        sl__fd_close(&in[i]);
        sl__fd_close(&out[i]);
        sl__fd_close(&err[i]);
        sl__fd_close(&rep[i]);
    }
    return SL_EIO;
}

static void s_close_pipes(s_proc *p) {
    sl__fd_close(&p->in_w);
    sl__fd_close(&p->out_r);
    sl__fd_close(&p->err_r);
}

/* Whether the process has exited, seen without reaping it: until it is reaped its group id cannot be reused. */
static bool s_exited(const s_proc *p) {
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    int r = waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT);
    return (r == 0 && si.si_pid == p->pid) || (r < 0 && errno == ECHILD);
}

static void s_reap(s_proc *p) {
    if (p->pid <= 0 || p->reaped)
        return;
    /* Whatever it left running in its group goes with it. */
    sl__child_signal_group(p->pid, SIGKILL);
    while (waitpid(p->pid, &p->status, 0) < 0 && errno == EINTR) {
    }
    p->reaped = true;
}

/* Closes the pipes, sends SIGTERM to the group, SIGKILL S_TERM_GRACE_MS later, and reaps. */
static void s_stop(s_proc *p) {
    if (p->pid <= 0 || p->reaped) {
        s_close_pipes(p);
        return;
    }
    s_close_pipes(p);
    sl__child_signal_group(p->pid, SIGTERM);
    for (long waited = 0; waited < S_TERM_GRACE_MS && !s_exited(p); waited += 10)
        s_sleep_ms(10);
    s_reap(p);
}

/* ---- stderr ---- */

/* Reads what the worker's stderr holds now. Returns false once it is closed. */
static bool s_read_stderr(s_state *st) {
    char tmp[4096];
    for (;;) {
        ssize_t r = read(st->p.err_r, tmp, sizeof(tmp));
        if (r > 0) {
            sl__stderr_tail_add(&st->err, tmp, (size_t)r);
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            sl__fd_close(&st->p.err_r);
            return false;
        }
        if (errno == EAGAIN)
            return true;
    }
}

/* "what: <stderr excerpt>" into buf (cap bytes). */
static void s_with_stderr(s_state *st, char *buf, size_t cap, const char *what) {
    size_t used = strlen(what) + 3;
    const char *excerpt = sl__stderr_tail_excerpt(&st->err, cap > used ? cap - used : 0);
    size_t n = strlen(what), e = strlen(excerpt);
    if (n >= cap)
        n = cap - 1;
    memmove(buf, what, n);
    if (e && n + 2 + e < cap) {
        memcpy(buf + n, ": ", 2);
        memcpy(buf + n + 2, excerpt, e);
        n += 2 + e;
    }
    buf[n] = '\0';
}

/* ---- JSON text ---- */

static size_t s_base64(char *out, const unsigned char *in, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    return o;
}

/* A growable text with a hard cap. */
typedef struct s_text {
    char **buf;
    size_t *cap;
    size_t len;
    size_t max;
    bool failed;
} s_text;

/* Room for n more bytes and the NUL. */
static bool s_reserve(s_text *t, size_t n) {
    if (t->failed)
        return false;
    if (t->len + n + 1 <= *t->cap)
        return true;
    size_t cap = *t->cap ? *t->cap : 4096;
    while (cap < t->len + n + 1)
        cap *= 2;
    if (cap > t->max)
        cap = t->max;
    char *b = t->len + n + 1 <= cap ? realloc(*t->buf, cap) : NULL;
    if (!b) {
        t->failed = true;
        return false;
    }
    *t->buf = b;
    *t->cap = cap;
    return true;
}

static void s_put(s_text *t, const char *s, size_t n) {
    if (!s_reserve(t, n))
        return;
    memcpy(*t->buf + t->len, s, n);
    t->len += n;
    (*t->buf)[t->len] = '\0';
}

static void s_puts(s_text *t, const char *s) {
    s_put(t, s, strlen(s));
}

/* "name":<quoted> and, when the bytes are not UTF-8, "name_b64":"<base64>" (§2). */
static void s_put_bytes_member(s_text *t, const char *name, const char *s, size_t n) {
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "\"%s\":", name);
    s_puts(t, tmp);
    size_t q = sl_json_quote(NULL, 0, s, n);
    if (!s_reserve(t, q))
        return;
    t->len += sl_json_quote(*t->buf + t->len, *t->cap - t->len, s, n);
    if (sl__wp_utf8_valid(s, n))
        return;
    snprintf(tmp, sizeof(tmp), ",\"%s_b64\":\"", name);
    s_puts(t, tmp);
    for (size_t i = 0; i < n && !t->failed; i += 48) {
        char b[64];
        size_t m = n - i < 48 ? n - i : 48;
        s_put(t, b, s_base64(b, (const unsigned char *)s + i, m));
    }
    s_puts(t, "\"");
}

/* ---- reading the worker's stdout ---- */

/* Reads more of stdout into in.buf once it is used up. Returns 1 (bytes read), 0 (nothing now), -1 (EOF or error). */
static int s_fill(s_state *st) {
    if (st->in.pos < st->in.len)
        return 1;
    st->in.pos = st->in.len = 0;
    ssize_t r = read(st->p.out_r, st->in.buf, S_RBUF_SIZE);
    if (r > 0) {
        st->in.len = (size_t)r;
        return 1;
    }
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    sl__fd_close(&st->p.out_r);
    return -1;
}

/* ---- one exchange ---- */

typedef enum s_outcome {
    S_ANSWERED,     /* a valid final line came: see the answer */
    S_NO_ANSWER,    /* the worker ended (exit, closed stdout) before any byte of its answer */
    S_BROKEN,       /* violation, crash or pipe failure after the answer began: `why` says which */
    S_TIMED_OUT,    /* --timeout */
    S_ABORTED,      /* the job was aborted */
    S_LOCAL_FAILED, /* sluice's own side failed (the output could not be written): task->error says why */
} s_outcome;

typedef struct s_exchange {
    /* sending: what is queued for the worker's stdin, written with one writev when the pipe takes it */
    struct iovec iov[8];
    int iov_n, iov_at;
    bool header_queued, end_queued, sent_all;
    char chunk_hdr[2][40];
    unsigned char probe; /* a byte read past the listed size */
    uint64_t total_in;
    int read_rc; /* a failed read of the object: the request ends with ok:false */
    char end_line[96];
    /* receiving */
    sl__wp_answer ans;
    bool too_big;   /* DST "-": the body did not fit */
    bool truncated; /* stdout ended in the middle of the answer */
    int local_rc;
    char why[512];
} s_exchange;

static int64_t s_deadline(const s_state *st) {
    return st->cfg->timeout_ms ? sl__now_ms() + st->cfg->timeout_ms : 0;
}

typedef struct s_deliver_ctx {
    s_state *st;
    sl__task *task;
    s_exchange *x;
} s_deliver_ctx;

static int s_deliver(void *ctx, const unsigned char *p, size_t n) {
    s_state *st = ((s_deliver_ctx *)ctx)->st;
    sl__task *task = ((s_deliver_ctx *)ctx)->task;
    s_exchange *x = ((s_deliver_ctx *)ctx)->x;
    if (task->out) {
        int rc = sl_task_write(task, p, n);
        return rc < 0 ? rc : 0;
    }
    if (x->too_big)
        return 0;
    size_t limit = task->result_cap - task->result_len;
    if (st->collect_len + n > limit) {
        x->too_big = true;
        return 0;
    }
    if (st->collect_len + n > st->collect_cap) {
        size_t cap = st->collect_cap ? st->collect_cap : 4096;
        while (cap < st->collect_len + n)
            cap *= 2;
        char *b = realloc(st->collect, cap);
        if (!b)
            return sl__task_fail(task, SL_ENOMEM, "out of memory");
        st->collect = b;
        st->collect_cap = cap;
    }
    memcpy(st->collect + st->collect_len, p, n);
    st->collect_len += n;
    return 0;
}

/* Handles what has been read of the answer. Returns 0 (go on), 1 (violation: x->why), or <0 (local failure). */
static int s_receive(s_state *st, sl__task *task, s_exchange *x) {
    s_deliver_ctx ctx = {st, task, x};
    int rc = sl__wp_answer_feed(&x->ans, &st->in, s_deliver, &ctx);
    if (rc == 1)
        snprintf(x->why, sizeof(x->why), "%s", x->ans.why);
    return rc;
}

static void s_queue(s_exchange *x, const void *p, size_t n) {
    x->iov[x->iov_n++] = (struct iovec){.iov_base = (void *)p, .iov_len = n};
}

static void s_queue_end(s_exchange *x) {
    if (x->read_rc)
        snprintf(x->end_line, sizeof(x->end_line), "{\"ok\":false,\"error\":\"sluice could not read the object\"}\n");
    else
        snprintf(x->end_line, sizeof(x->end_line), "{\"ok\":true,\"size\":%" PRIu64 "}\n", x->total_in);
    s_queue(x, x->end_line, strlen(x->end_line));
    x->end_queued = true;
}

/* Once everything queued is written, queues what comes next: the header, the next chunk of the object (its header
 * and bytes), and the end line. An object that fits in the buffer goes out in one writev: when its listed size has
 * been read, one more read (of one byte) tells whether it ended there. */
static void s_next_send(s_state *st, sl__task *task, s_exchange *x) {
    if (x->iov_at < x->iov_n || x->sent_all)
        return;
    x->iov_n = x->iov_at = 0;
    if (x->end_queued) {
        x->sent_all = true;
        return;
    }
    if (!x->header_queued) {
        s_queue(x, st->hdr, strlen(st->hdr));
        x->header_queued = true;
    }
    int64_t n = sl_task_read(task, task->buf, task->buf_size);
    if (n < 0) {
        x->read_rc = (int)n;
        s_queue_end(x);
        return;
    }
    if (n == 0) {
        s_queue_end(x);
        return;
    }
    x->total_in += (uint64_t)n;
    snprintf(x->chunk_hdr[0], sizeof(x->chunk_hdr[0]), "{\"chunk\":%" PRId64 "}\n", n);
    s_queue(x, x->chunk_hdr[0], strlen(x->chunk_hdr[0]));
    s_queue(x, task->buf, (size_t)n);
    if (x->total_in < task->src->size)
        return;
    int64_t more = sl_task_read(task, &x->probe, 1);
    if (more < 0) {
        x->read_rc = (int)more;
        s_queue_end(x);
    } else if (more == 0) {
        s_queue_end(x);
    } else {
        x->total_in += 1;
        snprintf(x->chunk_hdr[1], sizeof(x->chunk_hdr[1]), "{\"chunk\":1}\n");
        s_queue(x, x->chunk_hdr[1], strlen(x->chunk_hdr[1]));
        s_queue(x, &x->probe, 1);
    }
}

/* Writes what is queued, as far as the pipe takes it. Returns false when the worker stopped reading. */
static bool s_send(s_state *st, s_exchange *x) {
    while (x->iov_at < x->iov_n) {
        ssize_t w = writev(st->p.in_w, x->iov + x->iov_at, x->iov_n - x->iov_at);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return true;
        if (w < 0) {
            /* It exited or closed stdin: its answer (or its absence) tells what happened. */
            sl__sigpipe_clear();
            sl__fd_close(&st->p.in_w);
            x->iov_at = x->iov_n;
            x->sent_all = true;
            return false;
        }
        size_t left = (size_t)w;
        while (x->iov_at < x->iov_n && left >= x->iov[x->iov_at].iov_len)
            left -= x->iov[x->iov_at++].iov_len;
        if (left) {
            x->iov[x->iov_at].iov_base = (char *)x->iov[x->iov_at].iov_base + left;
            x->iov[x->iov_at].iov_len -= left;
        }
    }
    return true;
}

/* Writes the request and reads its answer until both are complete, the worker breaks, the time runs out or the job is
 * aborted. Writes and reads are tried first and polled for only when the pipe is full or empty. */
/* Which of the worker's pipes poll found ready. */
typedef struct s_polled {
    bool in, out, err;
} s_polled;

/* Waits, at most S_POLL_MS and not past `deadline` (0: none), until the worker's stdout or stderr has something, or
 * its stdin takes more when `sending`. Returns poll's result (<0 with errno). */
static int s_poll(const s_state *st, bool sending, int64_t deadline, s_polled *ev) {
    struct pollfd pfd[3];
    nfds_t nfd = 0;
    int i_in = -1, i_err = -1;
    if (st->p.in_w >= 0 && sending)
        i_in = (int)nfd, pfd[nfd++] = (struct pollfd){.fd = st->p.in_w, .events = POLLOUT};
    int i_out = (int)nfd;
    pfd[nfd++] = (struct pollfd){.fd = st->p.out_r, .events = POLLIN};
    if (st->p.err_r >= 0)
        i_err = (int)nfd, pfd[nfd++] = (struct pollfd){.fd = st->p.err_r, .events = POLLIN};
    long wait = S_POLL_MS;
    if (deadline) {
        int64_t left = deadline - sl__now_ms();
        wait = left <= 0 ? 0 : left < wait ? (long)left : wait;
    }
    int ready = poll(pfd, nfd, (int)wait);
    *ev = (s_polled){.in = ready > 0 && i_in >= 0 && pfd[i_in].revents,
                     .out = ready > 0 && pfd[i_out].revents,
                     .err = ready > 0 && i_err >= 0 && pfd[i_err].revents};
    return ready;
}

static s_outcome s_exchange_run(s_state *st, sl__task *task, s_exchange *x) {
    int64_t deadline = s_deadline(st);
    for (;;) {
        /* Send as much as the pipe takes now. */
        for (;;) {
            s_next_send(st, task, x);
            if (x->sent_all || st->p.in_w < 0 || x->iov_at == x->iov_n)
                break;
            if (!s_send(st, x) || x->iov_at < x->iov_n)
                break; /* the worker stopped reading, or the pipe is full */
        }
        if (x->ans.final && (x->sent_all || st->p.in_w < 0))
            return S_ANSWERED;
        if (s_aborted(st->cfg))
            return S_ABORTED;
        if (deadline && sl__now_ms() >= deadline)
            return S_TIMED_OUT;
        /* What has been read already is handled before waiting for more. */
        int rc = s_receive(st, task, x);
        if (rc < 0) {
            x->local_rc = rc;
            return S_LOCAL_FAILED;
        }
        if (rc > 0)
            return S_BROKEN;
        if (x->ans.final)
            continue;
        if (st->p.out_r >= 0 && x->sent_all) {
            /* Everything is sent: the answer is what comes next; try it before polling. */
            int got = s_fill(st);
            if (got > 0)
                continue;
        }
        if (st->p.out_r < 0) {
            /* stdout closed before the answer's final line. */
            if (!x->ans.begun)
                return S_NO_ANSWER;
            x->truncated = true;
            if (x->ans.in_chunk)
                snprintf(x->why, sizeof(x->why), "the answer ended in the middle of a chunk (%" PRIu64 " bytes short)",
                         x->ans.chunk_left);
            else if (st->in.line_len)
                snprintf(x->why, sizeof(x->why), "the answer ended in the middle of a line");
            else
                snprintf(x->why, sizeof(x->why), "the answer ended before its final line");
            return S_BROKEN;
        }

        s_polled ev;
        int ready = s_poll(st, x->iov_at < x->iov_n, deadline, &ev);
        if (ready < 0 && errno != EINTR) {
            snprintf(x->why, sizeof(x->why), "cannot poll the worker's pipes: %s", sl__errno_text(errno));
            return S_BROKEN;
        }
        if (ready <= 0)
            continue;
        if (ev.err)
            s_read_stderr(st);
        if (ev.in)
            s_send(st, x);
        if (ev.out) {
            if (s_fill(st) < 0 && !x->ans.begun)
                return S_NO_ANSWER;
        }
    }
}

/* ---- the start ---- */

/* Counts a start failure job-wide; the job stops at S_START_FAILURES_MAX. Returns the code for the object. */
static void s_start_failed(s_state *st, const char *reason) {
    snprintf(st->what, sizeof(st->what), "%s", reason);
    unsigned n = st->cfg->start_failures ? atomic_fetch_add(st->cfg->start_failures, 1) + 1 : 1;
    if (n >= S_START_FAILURES_MAX && st->cfg->stop) {
        char line[1024];
        snprintf(line, sizeof(line), "the worker '%s' failed to start %u times in a row: %s", st->cfg->display, n,
                 reason);
        st->cfg->stop(st->cfg->ctx, SL_ECHILD, line);
    }
}

static void s_break(s_state *st, long wait_ms, char *status, size_t cap);

/* Starts the worker and exchanges hellos. Returns 0, or <0 with task's reason set (the start failed). */
static int s_start(s_state *st, sl__task *task) {
    unsigned fails = st->cfg->start_failures ? atomic_load(st->cfg->start_failures) : 0;
    if (fails) {
        long delay = S_BACKOFF_FIRST_MS;
        for (unsigned i = 1; i < fails && delay < S_BACKOFF_MAX_MS; i++)
            delay *= 2;
        if (delay > S_BACKOFF_MAX_MS)
            delay = S_BACKOFF_MAX_MS;
        for (long waited = 0; waited < delay && !s_aborted(st->cfg); waited += 50)
            s_sleep_ms(50);
    }
    if (fails >= S_START_FAILURES_MAX || s_aborted(st->cfg))
        return sl__task_fail(task, SL_ECANCELED, "the worker was not started: the job is stopping");
    st->in.pos = st->in.len = 0;
    st->in.line_len = 0;
    st->answered = 0;
    sl__stderr_tail_reset(&st->err);
    char why[1024];
    int rc = s_spawn(st, why, sizeof(why));
    if (rc < 0) {
        s_stop(&st->p);
        s_start_failed(st, why);
        return sl__task_fail(task, SL_ECHILD, "%s", why);
    }
    /* The engine's hello (§3), sent at once. */
    s_text t = {.buf = &st->hdr, .cap = &st->hdr_cap, .max = S_LINE_MAX};
    char tmp[128];
    snprintf(tmp, sizeof(tmp), "{\"hello\":\"sluice\",\"versions\":[%d],\"worker_id\":%u,\"jobs\":%u,",
             S_PROTOCOL_VERSION, st->cfg->worker, st->cfg->workers);
    s_puts(&t, tmp);
    const char *src = st->cfg->src_text ? st->cfg->src_text : "";
    const char *dst = st->cfg->dst_text && st->cfg->dst_text[0] ? st->cfg->dst_text : "-";
    s_put_bytes_member(&t, "src", src, strlen(src));
    s_puts(&t, ",");
    s_put_bytes_member(&t, "dst", dst, strlen(dst));
    s_puts(&t, ",\"sluice\":\"" SL_VERSION_STRING "\"}\n");
    const char *reason = NULL;
    char buf[1024] = "";
    if (t.failed) {
        s_stop(&st->p);
        return sl__task_fail(task, SL_ENOMEM, "out of memory");
    }
    const char *send = st->hdr;
    size_t send_len = t.len;
    int64_t deadline = s_deadline(st);
    json_t *hello = NULL;
    for (;;) {
        if (s_aborted(st->cfg)) {
            s_stop(&st->p);
            return sl__task_fail(task, SL_ECANCELED, "worker stopped: the job was aborted");
        }
        if (deadline && sl__now_ms() >= deadline) {
            reason = "timed out before its hello";
            break;
        }
        sl__wp_got g = st->p.out_r >= 0 ? sl__wp_take_line(&st->in) : SL__WP_NONE;
        if (g == SL__WP_TOO_LONG) {
            reason = "a first line longer than 128 KiB";
            break;
        }
        if (g == SL__WP_LINE) {
            char jw[256];
            hello = sl__wp_parse_line(st->in.line, st->in.line_len, jw, sizeof(jw));
            st->in.line_len = 0;
            if (!hello) {
                snprintf(buf, sizeof(buf), "its first line is not a hello: %s", jw);
                reason = buf;
            }
            break;
        }
        if (st->p.out_r < 0) {
            char st_text[64];
            s_break(st, 1000, st_text, sizeof(st_text));
            snprintf(buf, sizeof(buf), "%s before its hello", st_text[0] ? st_text : "the worker closed its stdout");
            reason = buf;
            break;
        }
        s_polled ev;
        if (s_poll(st, send_len > 0, deadline, &ev) <= 0)
            continue;
        if (ev.err)
            s_read_stderr(st);
        if (ev.in) {
            ssize_t w = write(st->p.in_w, send, send_len);
            if (w > 0) {
                send += w;
                send_len -= (size_t)w;
            } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                sl__sigpipe_clear();
                sl__fd_close(&st->p.in_w);
                send_len = 0;
            }
        }
        if (ev.out)
            s_fill(st);
    }
    if (hello && !reason) {
        json_t *h = json_object_get(hello, "hello");
        json_t *v = json_object_get(hello, "version");
        json_t *e = json_object_get(hello, "error");
        uint64_t version = 0;
        if (!json_is_string(h) || strcmp(json_string_value(h), "worker") != 0) {
            snprintf(buf, sizeof(buf), "its first line is not a worker's hello (is it a sluice worker?)");
            reason = buf;
        } else if (!sl__wp_count(v, UINT32_MAX, &version)) {
            snprintf(buf, sizeof(buf), "its hello has no protocol version");
            reason = buf;
        } else if (version != S_PROTOCOL_VERSION) {
            char line[1024];
            snprintf(line, sizeof(line), "the worker '%s' speaks protocol version %" PRIu64 "; this sluice speaks %d",
                     st->cfg->display, version, S_PROTOCOL_VERSION);
            json_decref(hello);
            s_stop(&st->p);
            if (st->cfg->stop)
                st->cfg->stop(st->cfg->ctx, SL_ECHILD, line);
            if (st->cfg->start_failures)
                atomic_store(st->cfg->start_failures, S_START_FAILURES_MAX);
            return sl__task_fail(task, SL_ECHILD, "%s", line);
        } else if (e) {
            snprintf(buf, sizeof(buf), "its hello says it cannot work: %s",
                     json_is_string(e) ? json_string_value(e) : "(no reason)");
            reason = buf;
        }
    }
    json_decref(hello);
    if (reason) {
        if (st->p.err_r >= 0)
            s_read_stderr(st);
        char full[1024];
        s_with_stderr(st, full, sizeof(full), reason);
        s_stop(&st->p);
        s_start_failed(st, full);
        return sl__task_fail(task, SL_ECHILD, "worker failed to start: %s", full);
    }
    st->ready = true;
    return 0;
}

/* Ends the process: EOF on its stdin, --grace for it to exit (reading what it still writes), then the SIGTERM,
 * SIGKILL ladder. A process that had to be killed, or exited with a status other than 0, costs a warning. */
static void s_retire(s_state *st, bool graceful) {
    s_proc *p = &st->p;
    st->ready = false;
    if (p->pid <= 0)
        return;
    sl__fd_close(&p->in_w);
    bool killed = false;
    if (graceful) {
        int64_t deadline = sl__now_ms() + (st->cfg->grace_ms ? st->cfg->grace_ms : 25000);
        while (!s_exited(p)) {
            if (s_aborted(st->cfg) || sl__now_ms() >= deadline) {
                killed = true;
                break;
            }
            struct pollfd pfd[2];
            nfds_t nfd = 0;
            if (p->out_r >= 0)
                pfd[nfd++] = (struct pollfd){.fd = p->out_r, .events = POLLIN};
            if (p->err_r >= 0)
                pfd[nfd++] = (struct pollfd){.fd = p->err_r, .events = POLLIN};
            if (nfd == 0) {
                s_sleep_ms(10);
                continue;
            }
            if (poll(pfd, nfd, 50) <= 0)
                continue;
            /* What it writes now is discarded; it must not block on a full pipe. */
            if (p->out_r >= 0) {
                st->in.pos = st->in.len = 0;
                s_fill(st);
                st->in.pos = st->in.len = 0;
            }
            if (p->err_r >= 0) {
                s_read_stderr(st);
                sl__stderr_tail_reset(&st->err);
            }
        }
    } else {
        killed = true;
    }
    if (killed) {
        s_stop(p);
    } else {
        s_reap(p);
        s_close_pipes(p);
    }
    if (graceful && st->cfg->warn) {
        char what[128], line[256];
        if (killed)
            snprintf(line, sizeof(line), "worker %u ('%s') did not exit within --grace after EOF: killed",
                     st->cfg->worker, st->cfg->display);
        else if (!(WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0)) {
            sl__child_describe_status(p->status, "worker", what, sizeof(what));
            snprintf(line, sizeof(line), "worker %u ('%s'): %s at its end", st->cfg->worker, st->cfg->display, what);
        } else {
            line[0] = '\0';
        }
        if (line[0] && !s_aborted(st->cfg))
            st->cfg->warn(st->cfg->ctx, line);
    }
    p->pid = -1;
}

/* Stops a worker that broke, and says how it ended: its exit status if it exits within wait_ms. Reads the rest of
 * its stderr first: a traceback is often the reason. */
static void s_break(s_state *st, long wait_ms, char *status, size_t cap) {
    status[0] = '\0';
    st->ready = false;
    if (st->p.pid <= 0)
        return;
    sl__fd_close(&st->p.in_w);
    for (long waited = 0; waited < wait_ms && !s_exited(&st->p); waited += 10) {
        if (st->p.err_r >= 0)
            s_read_stderr(st);
        s_sleep_ms(10);
    }
    if (s_exited(&st->p)) {
        if (st->p.err_r >= 0)
            s_read_stderr(st);
        s_reap(&st->p);
        sl__child_describe_status(st->p.status, "worker", status, cap);
    }
    s_stop(&st->p);
    st->p.pid = -1;
}

/* Resident memory of the worker's process tree, the sum of VmRSS (§8). */
static uint64_t s_tree_rss(pid_t root) {
    pid_t pids[256];
    long n = sl__proc_tree_pids(root, SL__PROC_WALK_AUTO, pids, 256);
    uint64_t total = 0;
    long page = sysconf(_SC_PAGESIZE);
    for (long i = 0; i < n && i < 256; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/statm", (int)pids[i]);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        unsigned long long size = 0, resident = 0;
        if (fscanf(f, "%llu %llu", &size, &resident) == 2)
            total += resident * (uint64_t)page;
        fclose(f);
    }
    return total;
}

/* ---- the request ---- */

static int s_build_header(s_state *st, sl__task *task) {
    s_text t = {.buf = &st->hdr, .cap = &st->hdr_cap, .max = S_LINE_MAX};
    s_puts(&t, "{");
    s_put_bytes_member(&t, "key", task->src->key, task->src->key_len);
    char tmp[64];
    snprintf(tmp, sizeof(tmp), ",\"size\":%" PRIu64 ",", task->src->size);
    s_puts(&t, tmp);
    s_put_bytes_member(&t, "url", task->src_url, strlen(task->src_url));
    s_puts(&t, ",");
    if (task->dst_key)
        s_put_bytes_member(&t, "output_key", task->dst_key, strlen(task->dst_key));
    else
        s_puts(&t, "\"output_key\":null");
    /* The listing's metadata, as `ls --json` gives it, without its key and size. */
    sl_object o = *task->src;
    o.key = "";
    o.key_len = 0;
    o.source_fingerprint = NULL;
    char meta[512];
    size_t n = sl_object_format_json(&o, meta, sizeof(meta));
    const char *rest = n < sizeof(meta) ? strstr(meta, "\"size\":") : NULL;
    if (rest) {
        rest += 7;
        while (*rest >= '0' && *rest <= '9')
            rest++;
    }
    s_puts(&t, ",\"metadata\":{");
    if (rest && *rest == ',')
        s_puts(&t, rest + 1);
    else
        s_puts(&t, "}");
    s_puts(&t, "}\n");
    if (t.failed)
        return sl__task_fail(task, SL_ENAMETOOLONG, "the request header would pass %d bytes", S_LINE_MAX);
    return 0;
}

static int s_add_member(void *ctx, const char *name, size_t name_len, const char *value, size_t value_len) {
    sl__task *task = ctx;
    if (sl__task_result_printf(task, "%.*s:%.*s", (int)name_len, name, (int)value_len, value) < 0)
        return sl__task_fail(task, SL_ETOOBIG, "worker: the result members do not fit in a result line (64 KiB)");
    return 0;
}

/* The result members of the final line, as the worker wrote them (numbers keep their digits), added to the task's
 * result. */
static int s_add_result(const s_exchange *x, sl__task *task, json_t *result) {
    static const char *const reserved[] = {"key", "size", "output"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (json_object_get(result, reserved[i]))
            return sl__task_fail(task, SL_EINVAL,
                                 "worker: result member '%s' is sluice's own (key, size and output are reserved)",
                                 reserved[i]);
    size_t before = task->result_len;
    int rc = sl__wp_result_members(x->ans.final_text, x->ans.final_len, s_add_member, task);
    if (rc < 0) {
        task->result_len = before;
        task->result[before] = '\0';
    }
    return rc;
}

/* DST "-": "output" with the body as a JSON string, then the result members. */
static int s_emit_output(s_state *st, sl__task *task) {
    size_t quoted = sl_json_quote(NULL, 0, st->collect_len ? st->collect : "", st->collect_len);
    if (quoted + 16 >= task->result_cap - task->result_len)
        return sl__task_fail(task, SL_ETOOBIG,
                             "worker output exceeds %zu bytes once JSON-escaped; give a destination instead of -",
                             task->result_cap - task->result_len);
    char *text = malloc(quoted + 1);
    if (!text)
        return sl__task_fail(task, SL_ENOMEM, "out of memory");
    sl_json_quote(text, quoted + 1, st->collect_len ? st->collect : "", st->collect_len);
    int rc = sl__task_result_printf(task, "\"output\":%s", text);
    free(text);
    if (rc < 0)
        return sl__task_fail(task, SL_ETOOBIG,
                             "worker output exceeds the room of a result line once JSON-escaped; give a destination "
                             "instead of -");
    return 0;
}

static int s_judge(s_state *st, sl__task *task, s_exchange *x) {
    json_t *final = x->ans.final_json;
    if (x->read_rc)
        return x->read_rc; /* the task's reason is the store's */
    if (!x->ans.ok) {
        const char *e = json_string_value(json_object_get(final, "error"));
        return sl__task_fail(task, SL_ECHILD, "worker: %s", e ? e : "");
    }
    json_t *result = json_object_get(final, "result");
    if (!task->out && x->too_big)
        return sl__task_fail(task, SL_ETOOBIG, "worker output exceeds %zu bytes; give a destination instead of -",
                             task->result_cap - task->result_len);
    int rc = 0;
    if (!task->out && x->ans.has_body)
        rc = s_emit_output(st, task);
    if (rc == 0 && result && (!task->out || !x->ans.has_body))
        rc = s_add_result(x, task, result);
    /* A store destination and no output body: the output object is the result line, as `--op md5` writes it. */
    task->result_is_output = rc == 0 && task->out && !x->ans.has_body;
    return rc;
}

static int s_run(s_state *st, sl__task *task, bool *retry) {
    *retry = false;
    char status[64], why[1024], full[1024];
    if (st->ready && s_exited(&st->p))
        s_break(st, 0, status, sizeof(status)); /* it exited between objects (§8): replaced without a word */
    bool fresh = false;
    if (!st->ready) {
        int rc = s_start(st, task);
        if (rc < 0)
            return rc;
        fresh = true;
    }
    int rc = s_build_header(st, task);
    if (rc < 0)
        return rc;
    /* What it wrote on stderr since its last object is not this object's. */
    if (st->p.err_r >= 0)
        s_read_stderr(st);
    sl__stderr_tail_reset(&st->err);
    st->collect_len = 0;
    s_exchange x;
    memset(&x, 0, sizeof(x));
    x.ans.final_text = st->final_text;
    s_outcome out = s_exchange_run(st, task, &x);
    switch (out) {
    case S_ANSWERED:
        rc = s_judge(st, task, &x);
        json_decref(x.ans.final_json);
        if (st->cfg->start_failures)
            atomic_store(st->cfg->start_failures, 0);
        st->answered++;
        if (st->p.in_w < 0)
            s_break(st, 1000, status, sizeof(status));
        else if (st->cfg->max_objects && st->answered >= st->cfg->max_objects)
            s_retire(st, true);
        else if (st->cfg->max_rss_bytes && s_tree_rss(st->p.pid) > st->cfg->max_rss_bytes)
            s_retire(st, true);
        return rc;
    case S_NO_ANSWER:
        s_break(st, 1000, status, sizeof(status));
        snprintf(why, sizeof(why), "%s without a byte of answer", status[0] ? status : "the worker closed its stdout");
        s_with_stderr(st, full, sizeof(full), why);
        if (fresh)
            s_start_failed(st, full);
        *retry = true;
        return sl__task_fail(task, SL_ECHILD, "%s", full);
    case S_BROKEN:
        s_break(st, x.truncated ? 1000 : 0, status, sizeof(status));
        if (x.truncated && status[0])
            snprintf(why, sizeof(why), "%s in the middle of its answer (%s)", status, x.why);
        else
            snprintf(why, sizeof(why), "worker protocol violation: %s", x.why);
        s_with_stderr(st, full, sizeof(full), why);
        if (fresh)
            s_start_failed(st, full);
        return sl__task_fail(task, SL_ECHILD, "%s", full);
    case S_TIMED_OUT: {
        s_break(st, 0, status, sizeof(status));
        unsigned ms = st->cfg->timeout_ms;
        if (ms % 1000 == 0)
            snprintf(why, sizeof(why), "worker timed out after %us (killed)", ms / 1000);
        else
            snprintf(why, sizeof(why), "worker timed out after %ums (killed)", ms);
        s_with_stderr(st, full, sizeof(full), why);
        return sl__task_fail(task, SL_ECHILD, "%s", full);
    }
    case S_ABORTED:
        s_break(st, 0, status, sizeof(status));
        return sl__task_fail(task, SL_ECANCELED, "worker stopped: the job was aborted");
    case S_LOCAL_FAILED:
        s_break(st, 0, status, sizeof(status));
        return x.local_rc;
    }
    return sl__task_fail(task, SL_EINTERNAL, "worker: unknown outcome");
}

static int s_process(void *state, sl__task *task) {
    s_state *st = state;
    if (!task)
        return sl__fail(SL_EINVAL, "worker: NULL task");
    if (!st || !task->src || !task->src->key || !task->in || !task->buf || task->buf_size < 64)
        return sl__task_fail(task, SL_EINVAL, "worker: incomplete task");
    sigset_t pipe_set, old_mask;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
    bool second = st->retry_of == task->src;
    st->retry_of = NULL;
    bool retry = false;
    int rc = s_run(st, task, &retry);
    if (rc < 0 && retry && !second) {
        /* A worker that ended without a byte of answer (§8): the object goes once more to a fresh worker. Read again
         * from its start by the job, which tries an object that failed with SL_ECORRUPT again. */
        if (task->bytes_in == 0 && task->bytes_out == 0) {
            task->error[0] = '\0';
            rc = s_run(st, task, &retry);
        } else {
            st->retry_of = task->src;
            rc = SL_ECORRUPT;
        }
    }
    if (!sigismember(&old_mask, SIGPIPE)) {
        sl__sigpipe_clear();
        pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    }
    return rc;
}

void sl__op_worker_release(void *state) {
    s_state *st = state;
    if (st && st->ready)
        s_retire(st, true);
}

static void s_thread_fini(void *state) {
    s_state *st = state;
    if (!st)
        return;
    if (st->ready)
        s_retire(st, true);
    else if (st->p.pid > 0)
        s_stop(&st->p);
    free(st->envp);
    free(st->in.buf);
    free(st->in.line);
    free(st->final_text);
    free(st->hdr);
    free(st->collect);
    free(st);
}

static bool s_is_ours(const char *entry) {
    for (size_t i = 0; i < S_ENV_COUNT; i++)
        if (strncmp(entry, s_env_names[i], strlen(s_env_names[i])) == 0)
            return true;
    return false;
}

static int s_thread_init(const sl__op_config *cfg, void **state) {
    if (!state)
        return sl__fail(SL_EINVAL, "worker: NULL state");
    *state = NULL;
    if (!cfg || (cfg->use_shell ? !cfg->command : (!cfg->argv || !cfg->argv[0])))
        return sl__fail(SL_EINVAL, "worker: no command given");
    s_state *st = calloc(1, sizeof(*st));
    if (!st)
        return sl__fail(SL_ENOMEM, "out of memory");
    st->cfg = cfg;
    st->p = (s_proc){.pid = -1, .in_w = -1, .out_r = -1, .err_r = -1};
    size_t n = 0;
    for (char **e = environ; e && *e; e++)
        n++;
    st->envp = calloc(n + S_ENV_COUNT + 1, sizeof(*st->envp));
    st->in.buf = malloc(S_RBUF_SIZE);
    st->in.line = malloc(S_LINE_MAX + 1);
    st->final_text = malloc(S_LINE_MAX + 1);
    if (!st->envp || !st->in.buf || !st->in.line || !st->final_text) {
        s_thread_fini(st);
        return sl__fail(SL_ENOMEM, "out of memory");
    }
    size_t k = 0;
    for (char **e = environ; e && *e; e++)
        if (!s_is_ours(*e))
            st->envp[k++] = *e;
    int a = snprintf(st->envstr, sizeof(st->envstr), "SLUICE_WORKER_ID=%u", cfg->worker);
    snprintf(st->envstr + a + 1, sizeof(st->envstr) - (size_t)a - 1, "SLUICE_JOBS=%u", cfg->workers);
    st->envp[k++] = st->envstr;
    st->envp[k++] = st->envstr + a + 1;
    st->envp[k] = NULL;
    *state = st;
    return 0;
}

const sl__op sl__op_worker = {
    .name = "worker",
    .description = "hand each object to a long-lived worker process per worker thread (docs/worker-protocol.md)",
    .abi_version = SL_OP_ABI_VERSION,
    .flags = SL_OP_TRANSFORMS,
    .thread_init = s_thread_init,
    .process = s_process,
    .thread_fini = s_thread_fini,
};
