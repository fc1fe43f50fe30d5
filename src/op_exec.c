/* The exec operation: each object's bytes on a child's stdin, the child's stdout the output object.
 *
 * One child per object, spawned without a shell (unless the user asked for one) so that object names never reach a
 * command line: the child learns them from SLUICE_* environment variables. The parent pumps three non-blocking pipes
 * with poll(), reading the child's stdout while it feeds stdin, so a child that writes before it reads cannot
 * deadlock against us. Every path reaps the child and closes every descriptor before process() returns. */
#include "child.h"
#include "clock.h"
#include "fail.h"
#include "task.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define S_HAVE_ADDCLOSEFROM 1
#endif

extern char **environ;

#define S_POLL_MS 200
#define S_TERM_GRACE_MS 2000
/* After the child's exit, once what it wrote before it exited has been read: how long the end of its stdout and
 * stderr is waited for (a process it left running may hold them open). */
#define S_EXIT_DRAIN_MS 1000

static const char *const s_env_names[] = {"SLUICE_KEY=", "SLUICE_SIZE=", "SLUICE_URL=", "SLUICE_OUTPUT_KEY="};
#define S_ENV_COUNT (sizeof(s_env_names) / sizeof(s_env_names[0]))

static const char s_output_member[] = "\"output\":";

/* Per-thread state: made by thread_init, reused for every object, freed by thread_fini. The buffers only grow, and
 * each is bounded: envp by the environment plus four variables, collect by the task's result capacity (twice, while
 * the output is being quoted). */
typedef struct s_state {
    const sl__op_config *cfg;
    posix_spawnattr_t attr;
    char **envp;
    size_t envp_cap; /* entries */
    char *envstr;    /* the SLUICE_* assignments envp points into */
    size_t envstr_cap;
    char *collect; /* raw stdout when task->out is NULL */
    size_t collect_len, collect_cap;
    sl__stderr_tail err; /* what the child wrote on stderr */
} s_state;

typedef struct s_child {
    pid_t pid;
    int in_w, out_r, err_r; /* parent ends, -1 once closed */
    bool reaped;
    int status;
    int64_t deadline_ms; /* sl__now_ms() past which the child is stopped; 0 = no limit */
    bool exited;         /* seen to have exited, not reaped yet (s_exited) */
    bool out_held;       /* its stdout was still open S_EXIT_DRAIN_MS after its exit: held by what it left running */
    size_t out_unread;   /* bytes in its stdout pipe when its exit was seen and not read yet */
} s_child;

static void s_close_pipes(s_child *ch) {
    sl__fd_close(&ch->in_w);
    sl__fd_close(&ch->out_r);
    sl__fd_close(&ch->err_r);
}

static bool s_aborted(const sl__task *task) {
    return task->abort && atomic_load(task->abort);
}

static bool s_expired(const s_child *ch) {
    return ch->deadline_ms && sl__now_ms() >= ch->deadline_ms;
}

/* `most`, or less if the deadline comes sooner. */
static long s_until_deadline_ms(const s_child *ch, long most) {
    if (!ch->deadline_ms)
        return most;
    int64_t left = ch->deadline_ms - sl__now_ms();
    return left <= 0 ? 0 : left < most ? (long)left : most;
}

static void s_sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* Whether the child has exited, seen without reaping it (WNOWAIT): until it is reaped, its pid and so its process
 * group id cannot be reused, and whatever it left running in its group can still be signalled. */
static bool s_exited(s_child *ch) {
    if (!ch->exited && ch->pid > 0 && !ch->reaped) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        ch->exited = waitid(P_PID, (id_t)ch->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == ch->pid;
    }
    return ch->exited;
}

static void s_waitpid_blocking(s_child *ch) {
    while (waitpid(ch->pid, &ch->status, 0) < 0 && errno == EINTR) {
    }
    ch->reaped = true;
}

/* No-op once the child has been reaped. */
static void s_kill_and_reap(s_child *ch) {
    if (ch->pid <= 0 || ch->reaped)
        return;
    sl__child_signal_group(ch->pid, SIGKILL);
    s_waitpid_blocking(ch);
}

/* Asks the child to stop, gives it S_TERM_GRACE_MS, then kills it. The pipes are closed first, so a child that
 * handles SIGTERM by flushing output gets EPIPE instead of blocking on a pipe nobody reads. */
static void s_stop(s_child *ch) {
    s_close_pipes(ch);
    sl__child_signal_group(ch->pid, SIGTERM);
    /* Waits without reaping (WNOWAIT): while the child is a zombie its group id stays ours, so whatever else in the
     * group ignored SIGTERM can still be killed below. */
    long waited_us = 0, step_us = 100;
    while (waited_us < S_TERM_GRACE_MS * 1000L) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        int r = waitid(P_PID, (id_t)ch->pid, &si, WEXITED | WNOHANG | WNOWAIT);
        if ((r == 0 && si.si_pid == ch->pid) || (r < 0 && errno != EINTR))
            break;
        s_sleep_us(step_us);
        waited_us += step_us;
        step_us = step_us * 2 > 50000 ? 50000 : step_us * 2;
    }
    s_kill_and_reap(ch);
}

static int s_cancel(sl__task *task, s_child *ch) {
    s_stop(ch);
    return sl__task_fail(task, SL_ECANCELED, "command stopped: the job was aborted");
}

/* The store's own explanation when it left one (process() clears it first), else the code's message. */
static int s_store_failed(sl__task *task, int rc, const char *what) {
    const char *why = sl_last_error();
    return sl__task_fail(task, rc, "%s: %s", what, why[0] ? why : sl_strerror(rc));
}

static int s_pipe_failed(sl__task *task, int errnum, const char *what) {
    return sl__task_fail(task, SL_EIO, "%s: %s", what, sl__errno_text(errnum));
}

static int s_grow(char **p, size_t *cap, size_t need) {
    if (need <= *cap)
        return 0;
    char *n = realloc(*p, need);
    if (!n)
        return SL_ENOMEM;
    *p = n;
    *cap = need;
    return 0;
}

static bool s_is_ours(const char *entry) {
    for (size_t i = 0; i < S_ENV_COUNT; i++)
        if (strncmp(entry, s_env_names[i], strlen(s_env_names[i])) == 0)
            return true;
    return false;
}

static size_t s_environ_count(void) {
    size_t n = 0;
    for (char **e = environ; e && *e; e++)
        n++;
    return n;
}

/* Room for `entries` environment variables (without the four of ours and the NULL) and `bytes` of our assignments. */
static int s_reserve_env(s_state *st, size_t entries, size_t bytes) {
    size_t need = entries + S_ENV_COUNT + 1;
    if (need > st->envp_cap) {
        char **envp = realloc(st->envp, need * sizeof(*envp));
        if (!envp)
            return SL_ENOMEM;
        st->envp = envp;
        st->envp_cap = need;
    }
    /* Rounded up so that keys of slowly increasing length do not realloc for every object. */
    return s_grow(&st->envstr, &st->envstr_cap, (bytes + 255) & ~(size_t)255);
}

/* envp = the current environment minus any inherited SLUICE_* variables, plus this object's. An inherited
 * SLUICE_OUTPUT_KEY is dropped even when there is no output key (sluice run from inside a sluice command). */
static int s_build_env(s_state *st, const sl__task *task) {
    char size_text[24];
    snprintf(size_text, sizeof(size_text), "%" PRIu64, task->src->size);
    const char *values[S_ENV_COUNT] = {task->src->key, size_text, task->src_url, task->dst_key};
    size_t bytes = 0;
    for (size_t i = 0; i < S_ENV_COUNT; i++)
        if (values[i])
            bytes += strlen(s_env_names[i]) + strlen(values[i]) + 1;
    if (s_reserve_env(st, s_environ_count(), bytes) < 0)
        return SL_ENOMEM;
    size_t k = 0;
    for (char **e = environ; e && *e; e++)
        if (!s_is_ours(*e))
            st->envp[k++] = *e;
    char *p = st->envstr;
    for (size_t i = 0; i < S_ENV_COUNT; i++) {
        if (!values[i])
            continue;
        size_t name_len = strlen(s_env_names[i]), value_len = strlen(values[i]);
        st->envp[k++] = p;
        memcpy(p, s_env_names[i], name_len);
        memcpy(p + name_len, values[i], value_len + 1);
        p += name_len + value_len + 1;
    }
    st->envp[k] = NULL;
    return 0;
}

static int s_spawn(s_state *st, sl__task *task, s_child *ch) {
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    int e = 0;
    if (sl__pipe_cloexec(in) < 0 || sl__pipe_cloexec(out) < 0 || sl__pipe_cloexec(err) < 0 ||
        sl__fd_nonblocking(in[1]) < 0 || sl__fd_nonblocking(out[0]) < 0 || sl__fd_nonblocking(err[0]) < 0)
        e = errno;

    posix_spawn_file_actions_t fa;
    if (!e)
        e = posix_spawn_file_actions_init(&fa);
    int spawn_e = 0;
    if (!e) {
        if ((e = posix_spawn_file_actions_adddup2(&fa, in[0], 0)) == 0 &&
            (e = posix_spawn_file_actions_adddup2(&fa, out[1], 1)) == 0 &&
            (e = posix_spawn_file_actions_adddup2(&fa, err[1], 2)) == 0) {
#ifdef S_HAVE_ADDCLOSEFROM
            /* Belt and braces: descriptors other code opened without O_CLOEXEC do not reach the child either. */
            e = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
        }
        if (!e && st->cfg->use_shell) {
            const char *sh_argv[] = {"sh", "-c", st->cfg->command, "sluice", NULL};
            spawn_e = posix_spawn(&ch->pid, "/bin/sh", &fa, &st->attr, (char *const *)sh_argv, st->envp);
        } else if (!e) {
            spawn_e = posix_spawnp(&ch->pid, st->cfg->argv[0], &fa, &st->attr, (char *const *)st->cfg->argv, st->envp);
        }
        posix_spawn_file_actions_destroy(&fa);
    }
    sl__fd_close(&in[0]);
    sl__fd_close(&out[1]);
    sl__fd_close(&err[1]);
    ch->in_w = in[1];
    ch->out_r = out[0];
    ch->err_r = err[0];
    if (!e && !spawn_e)
        return 0;

    ch->pid = -1;
    s_close_pipes(ch);
    if (spawn_e)
        return sl__task_fail(task, SL_ECHILD, "cannot run '%s': %s", st->cfg->use_shell ? "/bin/sh" : st->cfg->argv[0],
                             sl__errno_text(spawn_e));
    return sl__task_fail(task, e == ENOMEM ? SL_ENOMEM : SL_EIO, "cannot set up the command's pipes: %s",
                         sl__errno_text(e));
}

/* Appends to the collected output; fails once it would pass `limit`. */
static int s_collect(s_state *st, const unsigned char *p, size_t n, size_t limit) {
    if (n > limit - st->collect_len)
        return SL_ETOOBIG;
    if (st->collect_len + n > st->collect_cap) {
        size_t cap = st->collect_cap ? st->collect_cap : 4096;
        while (cap < st->collect_len + n)
            cap *= 2;
        if (cap > limit)
            cap = limit;
        if (s_grow(&st->collect, &st->collect_cap, cap) < 0)
            return SL_ENOMEM;
    }
    memcpy(st->collect + st->collect_len, p, n);
    st->collect_len += n;
    return 0;
}

static int s_time_out(s_state *st, sl__task *task, s_child *ch);

/* Moves data until the child has closed stdout and stderr and no input remains to feed it. task->buf is split in
 * two halves: source bytes on their way to the child's stdin, and bytes read from the child's stdout or stderr.
 * On failure task->error is filled and the caller kills and reaps the child. */
static int s_pump(s_state *st, sl__task *task, s_child *ch) {
    size_t half = task->buf_size / 2;
    unsigned char *inbuf = task->buf, *outbuf = task->buf + half;
    size_t outcap = task->buf_size - half;
    size_t in_off = 0, in_len = 0;
    /* Raw bytes allowed when collecting: the room left in result minus the member's name, quotes, separating comma
     * and NUL. Escaping may still make it too large; s_emit_output checks that. */
    size_t overhead = sizeof(s_output_member) - 1 + 2 + 2;
    size_t room = task->out ? 0 : task->result_cap - task->result_len;
    size_t limit = room > overhead ? room - overhead : 0;

    while (ch->in_w >= 0 || ch->out_r >= 0 || ch->err_r >= 0) {
        if (s_aborted(task))
            return s_cancel(task, ch);
        if (!ch->exited && s_exited(ch)) {
            /* The command's exit ends its object: the rest of its input is not needed, and its output has reached
             * its end once what is still in the pipes has been read. Only a process it left running (a background
             * job, a daemon) that inherited the pipes can keep them open: that is waited for S_EXIT_DRAIN_MS at
             * most, the time limit no longer applies (the command has not timed out). */
            sl__fd_close(&ch->in_w);
            /* What it wrote before it exited is its output, read however long writing it out takes (a slow
             * destination); the bound starts once that is read. */
            int unread = 0;
            if (ch->out_r >= 0 && ioctl(ch->out_r, FIONREAD, &unread) < 0)
                unread = 0;
            ch->out_unread = unread > 0 ? (size_t)unread : 0;
            ch->deadline_ms = ch->out_unread ? 0 : sl__now_ms() + S_EXIT_DRAIN_MS;
        }
        if (s_expired(ch) && ch->exited) {
            /* A stderr held open is not waited for; a stdout held open means the output may be incomplete. */
            sl__fd_close(&ch->err_r);
            ch->out_held = ch->out_r >= 0;
            sl__fd_close(&ch->out_r);
            break;
        }
        if (s_expired(ch))
            return s_time_out(st, task, ch);
        if (ch->in_w >= 0 && in_off == in_len) {
            int64_t n = sl_read(task->in, inbuf, half);
            if (n < 0)
                return s_store_failed(task, (int)n, "cannot read the object");
            if (n == 0)
                sl__fd_close(&ch->in_w);
            in_off = 0;
            in_len = (size_t)n;
            task->bytes_in += (uint64_t)n;
        }

        struct pollfd pfd[3];
        nfds_t nfd = 0;
        int i_in = -1, i_out = -1, i_err = -1;
        if (ch->in_w >= 0) {
            i_in = (int)nfd;
            pfd[nfd++] = (struct pollfd){.fd = ch->in_w, .events = POLLOUT};
        }
        if (ch->out_r >= 0) {
            i_out = (int)nfd;
            pfd[nfd++] = (struct pollfd){.fd = ch->out_r, .events = POLLIN};
        }
        if (ch->err_r >= 0) {
            i_err = (int)nfd;
            pfd[nfd++] = (struct pollfd){.fd = ch->err_r, .events = POLLIN};
        }
        if (nfd == 0)
            break;
        int ready = poll(pfd, nfd, (int)s_until_deadline_ms(ch, S_POLL_MS));
        if (ready < 0 && errno != EINTR)
            return s_pipe_failed(task, errno, "cannot poll the command's pipes");
        if (ready <= 0)
            continue;

        if (i_in >= 0 && pfd[i_in].revents) {
            ssize_t w = write(ch->in_w, inbuf + in_off, in_len - in_off);
            if (w > 0) {
                in_off += (size_t)w;
            } else if (w < 0 && errno == EPIPE) {
                /* The child stopped reading (`head`, `true`): the rest of the input is not needed; its exit status
                 * alone says whether it succeeded. */
                sl__sigpipe_clear();
                sl__fd_close(&ch->in_w);
            } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                return s_pipe_failed(task, errno, "cannot write to the command's stdin");
            }
        }
        if (i_out >= 0 && pfd[i_out].revents) {
            ssize_t r = read(ch->out_r, outbuf, outcap);
            if (r == 0) {
                sl__fd_close(&ch->out_r);
            } else if (r > 0) {
                task->bytes_out += (uint64_t)r;
                int rc = task->out ? sl_write(task->out, outbuf, (size_t)r) : s_collect(st, outbuf, (size_t)r, limit);
                if (rc == SL_ETOOBIG)
                    return sl__task_fail(task, SL_ETOOBIG,
                                         "command output exceeds %zu bytes; give a destination instead of -", limit);
                if (rc == SL_ENOMEM && !task->out)
                    return sl__task_fail(task, rc, "out of memory");
                if (rc < 0)
                    return s_store_failed(task, rc, "cannot write the output");
                if (ch->out_unread) {
                    ch->out_unread -= (size_t)r < ch->out_unread ? (size_t)r : ch->out_unread;
                    if (!ch->out_unread)
                        ch->deadline_ms = sl__now_ms() + S_EXIT_DRAIN_MS;
                }
            } else if (errno != EAGAIN && errno != EINTR) {
                return s_pipe_failed(task, errno, "cannot read the command's stdout");
            }
        }
        if (i_err >= 0 && pfd[i_err].revents) {
            ssize_t r = read(ch->err_r, outbuf, outcap);
            if (r == 0)
                sl__fd_close(&ch->err_r);
            else if (r > 0)
                sl__stderr_tail_add(&st->err, outbuf, (size_t)r);
            else if (errno != EAGAIN && errno != EINTR)
                return s_pipe_failed(task, errno, "cannot read the command's stderr");
        }
    }
    return 0;
}

/* Reaps a child that has closed all its pipes, noticing an abort or the time limit while it keeps running. */
static int s_reap(s_state *st, sl__task *task, s_child *ch) {
    long step_us = 50;
    for (;;) {
        pid_t r = waitpid(ch->pid, &ch->status, WNOHANG);
        if (r == ch->pid) {
            ch->reaped = true;
            return 0;
        }
        if (r < 0 && errno != EINTR) {
            int e = errno;
            ch->reaped = true;
            return sl__task_fail(task, SL_EINTERNAL, "cannot wait for the command: %s%s", sl__errno_text(e),
                                 e == ECHILD ? " (is SIGCHLD ignored?)" : "");
        }
        if (s_aborted(task))
            return s_cancel(task, ch);
        if (s_expired(ch))
            return s_time_out(st, task, ch);
        s_sleep_us(step_us); /* at most 20 ms past the deadline */
        step_us = step_us * 2 > 20000 ? 20000 : step_us * 2;
    }
}

/* The time limit, as the user would have written it: "30s", "500ms", "1.25s". */
static void s_format_limit(unsigned ms, char *buf, size_t cap) {
    if (ms % 1000 == 0) {
        snprintf(buf, cap, "%us", ms / 1000);
    } else if (ms < 1000) {
        snprintf(buf, cap, "%ums", ms);
    } else {
        unsigned frac = ms % 1000, digits = 3;
        for (; frac % 10 == 0; frac /= 10)
            digits--;
        snprintf(buf, cap, "%u.%0*us", ms / 1000, (int)digits, frac);
    }
}

/* Fails the object with what the child said on stderr before it was stopped, which often explains the hang. */
static int s_time_out(s_state *st, sl__task *task, s_child *ch) {
    s_stop(ch);
    char limit[32], what[80];
    s_format_limit(st->cfg->timeout_ms, limit, sizeof(limit));
    snprintf(what, sizeof(what), "command timed out after %s (killed)", limit);
    size_t used = strlen(what) + 3; /* ": " and the NUL */
    const char *excerpt = sl__stderr_tail_excerpt(&st->err, task->error_cap > used ? task->error_cap - used : 0);
    return sl__task_fail(task, SL_ECHILD, "%s%s%s", what, excerpt[0] ? ": " : "", excerpt);
}

static int s_emit_output(s_state *st, sl__task *task) {
    char probe;
    const char *raw = st->collect_len ? st->collect : "";
    size_t quoted = sl_json_quote(&probe, 1, raw, st->collect_len);
    size_t room = task->result_cap - task->result_len;
    int rc = SL_ETOOBIG;
    if (sizeof(s_output_member) - 1 + quoted < room) {
        rc = s_grow(&st->collect, &st->collect_cap, st->collect_len + quoted + 1);
        if (rc == 0) {
            char *text = st->collect + st->collect_len;
            sl_json_quote(text, quoted + 1, st->collect_len ? st->collect : "", st->collect_len);
            rc = sl__task_result_printf(task, "%s%s", s_output_member, text);
        }
    }
    if (rc == SL_ENOMEM)
        return sl__task_fail(task, rc, "out of memory");
    if (rc < 0)
        return sl__task_fail(task, SL_ETOOBIG,
                             "command output exceeds %zu bytes once JSON-escaped; give a destination instead of -",
                             room);
    return 0;
}

static int s_judge(s_state *st, sl__task *task, const s_child *ch) {
    int status = ch->status;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && ch->out_held)
        return sl__task_fail(task, SL_ECHILD,
                             "command exited with status 0 but left a process holding its stdout open (still open "
                             "%d s after the exit): the output may be incomplete, not committed (redirect background "
                             "jobs: 'job >/dev/null &')",
                             S_EXIT_DRAIN_MS / 1000);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return task->out ? 0 : s_emit_output(st, task);
    char what[64];
    sl__child_describe_status(status, "command", what, sizeof(what));
    size_t used = strlen(what) + 3; /* ": " and the NUL */
    const char *excerpt = sl__stderr_tail_excerpt(&st->err, task->error_cap > used ? task->error_cap - used : 0);
    return sl__task_fail(task, SL_ECHILD, "%s%s%s", what, excerpt[0] ? ": " : "", excerpt);
}

static int s_run(s_state *st, sl__task *task) {
    s_child ch = {.pid = -1, .in_w = -1, .out_r = -1, .err_r = -1};
    sl__stderr_tail_reset(&st->err);
    st->collect_len = 0;
    if (s_build_env(st, task) < 0)
        return sl__task_fail(task, SL_ENOMEM, "out of memory");
    int rc = s_spawn(st, task, &ch);
    if (rc < 0)
        return rc;
    if (st->cfg->timeout_ms)
        ch.deadline_ms = sl__now_ms() + st->cfg->timeout_ms;
    rc = s_pump(st, task, &ch);
    if (rc == 0 && ch.out_held)
        s_stop(&ch); /* reaps it, and stops what it left in its process group: nothing reads that output now */
    if (rc == 0 && !ch.reaped)
        rc = s_reap(st, task, &ch);
    /* The one cleanup path: after a failure the child may still be running and the pipes open. */
    s_close_pipes(&ch);
    s_kill_and_reap(&ch);
    return rc < 0 ? rc : s_judge(st, task, &ch);
}

static int s_process(void *state, sl__task *task) {
    s_state *st = state;
    if (!task)
        return sl__fail(SL_EINVAL, "exec: NULL task");
    if (!st || !task->src || !task->src->key || !task->in || !task->buf || task->buf_size < 2)
        return sl__task_fail(task, SL_EINVAL, "exec: incomplete task");
    if (!task->out && (!task->result || task->result_len >= task->result_cap))
        return sl__task_fail(task, SL_EINVAL, "exec: no destination and no room for a result");

    /* The engine blocks SIGPIPE in its workers; a library caller may not have, and a write to a child that exited
     * must come back as EPIPE rather than kill the process. */
    sigset_t pipe_set, old_mask;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
    sl__fail(SL_OK, "%s", "");
    int rc = s_run(st, task);
    if (!sigismember(&old_mask, SIGPIPE)) {
        sl__sigpipe_clear();
        pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    }
    return rc;
}

static void s_thread_fini(void *state) {
    s_state *st = state;
    if (!st)
        return;
    posix_spawnattr_destroy(&st->attr);
    free(st->envp);
    free(st->envstr);
    free(st->collect);
    free(st);
}

static int s_thread_init(const sl__op_config *cfg, void **state) {
    if (!state)
        return sl__fail(SL_EINVAL, "exec: NULL state");
    *state = NULL;
    if (!cfg || (cfg->use_shell ? !cfg->command : (!cfg->argv || !cfg->argv[0])))
        return sl__fail(SL_EINVAL, "exec: no command given");
    s_state *st = calloc(1, sizeof(*st));
    if (!st)
        return sl__fail(SL_ENOMEM, "out of memory");
    st->cfg = cfg;
    if (posix_spawnattr_init(&st->attr) != 0) {
        free(st);
        return sl__fail(SL_ENOMEM, "out of memory");
    }
    if (s_reserve_env(st, s_environ_count(), 1024) < 0) {
        s_thread_fini(st);
        return sl__fail(SL_ENOMEM, "out of memory");
    }
    /* A worker thread blocks signals (SIGPIPE, and those the main thread handles) and the process may ignore
     * SIGPIPE; a child must start with nothing blocked and SIGPIPE at its default, like one started from a shell,
     * so that SIGTERM stops it and `cmd | head` pipelines inside it end normally. Each child gets its own process
     * group: a Ctrl-C at the terminal reaches sluice alone, which then lets in-flight children finish (draining)
     * instead of every object in flight failing with "killed by SIGINT". */
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    posix_spawnattr_setsigmask(&st->attr, &none);
    posix_spawnattr_setsigdefault(&st->attr, &dfl);
    posix_spawnattr_setpgroup(&st->attr, 0);
    posix_spawnattr_setflags(&st->attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    *state = st;
    return 0;
}

const sl__op sl__op_exec = {
    .name = "exec",
    .description = "run a command per object: the object's bytes on its stdin, its stdout the output object",
    .abi_version = SL_OP_ABI_VERSION,
    .flags = SL_OP_TRANSFORMS,
    .thread_init = s_thread_init,
    .process = s_process,
    .thread_fini = s_thread_fini,
};
