/* A deterministic program with the shape of the bug sluice exists for: a thread pool whose every task builds a fresh
 * storage "client" that stays referenced. Used by tests/cli/watch.sh and to draw the charts in docs/.
 *
 *   leaky_pool leak    [OPTIONS]  every task makes a new client and registers it in a global registry that is never
 *                                 emptied (a per-call client cache): memory grows by one client per task
 *   leaky_pool fixed   [OPTIONS]  one client per worker thread, in thread-local storage, reused by every task: flat
 *   leaky_pool plateau [OPTIONS]  touches one big block once at start, then runs like `fixed`: a step, then flat
 *
 * options: --tasks N (default 1600), --threads N (8), --task-ms MS (10: each task sleeps this long, so the run takes
 * about tasks * task-ms / threads = 2 s), --client-kib K (64), --block-mib M (200, plateau only).
 * Prints one line at the end: mode, tasks done, clients made, checksum. Exit status 0, or 2 for a usage error. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MODE_LEAK, MODE_FIXED, MODE_PLATEAU };

/* What a real client holds: connection state and a few buffers, all of them written to. */
typedef struct client {
    struct client *next; /* the registry's link */
    unsigned id;
    size_t buf_size;
    unsigned char *bufs[4];
} client;

static struct {
    int mode;
    unsigned tasks, threads, task_ms, client_kib, block_mib;
} s_cfg = {MODE_FIXED, 1600, 8, 10, 64, 200};

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned s_next_task;    /* guarded by s_lock */
static client *s_registry;      /* guarded by s_lock; leak mode: every client ever made */
static unsigned s_clients_made; /* guarded by s_lock */
static uint64_t s_checksum;     /* guarded by s_lock */
static volatile unsigned char *s_block;
static _Thread_local client *tl_client;

static client *s_client_new(void) {
    client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->buf_size = (size_t)s_cfg.client_kib * 1024 / 4;
    for (int i = 0; i < 4; i++) {
        c->bufs[i] = malloc(c->buf_size ? c->buf_size : 1);
        if (!c->bufs[i])
            return NULL; /* the process exits on this path */
        memset(c->bufs[i], 0x40 + i, c->buf_size);
    }
    pthread_mutex_lock(&s_lock);
    c->id = s_clients_made++;
    pthread_mutex_unlock(&s_lock);
    return c;
}

static void s_client_free(client *c) {
    if (!c)
        return;
    for (int i = 0; i < 4; i++)
        free(c->bufs[i]);
    free(c);
}

static client *s_client_for_task(void) {
    if (s_cfg.mode != MODE_LEAK) {
        if (!tl_client)
            tl_client = s_client_new();
        return tl_client;
    }
    client *c = s_client_new();
    if (c) {
        pthread_mutex_lock(&s_lock);
        c->next = s_registry;
        s_registry = c;
        pthread_mutex_unlock(&s_lock);
    }
    return c;
}

static void s_sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static void *s_worker(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&s_lock);
        unsigned task = s_next_task < s_cfg.tasks ? s_next_task++ : UINT32_MAX;
        pthread_mutex_unlock(&s_lock);
        if (task == UINT32_MAX)
            break;
        client *c = s_client_for_task();
        if (!c) {
            fprintf(stderr, "leaky_pool: out of memory at task %u\n", task);
            exit(1);
        }
        /* "Use" the client: write a request into a buffer, read a response out of another. */
        unsigned char *req = c->bufs[task % 4], *resp = c->bufs[(task + 1) % 4];
        snprintf((char *)req, c->buf_size < 32 ? c->buf_size : 32, "GET /o/%u", task);
        uint64_t sum = 0;
        for (size_t i = 0; i < c->buf_size; i += 512)
            sum += resp[i];
        pthread_mutex_lock(&s_lock);
        s_checksum += sum + c->id;
        pthread_mutex_unlock(&s_lock);
        s_sleep_ms(s_cfg.task_ms);
    }
    s_client_free(tl_client);
    tl_client = NULL;
    return NULL;
}

static int s_usage(const char *why) {
    fprintf(stderr,
            "leaky_pool: %s\nusage: leaky_pool leak|fixed|plateau [--tasks N] [--threads N] [--task-ms MS] "
            "[--client-kib K] [--block-mib M]\n",
            why);
    return 2;
}

static int s_number(const char *text, unsigned *out) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || end == text || *end || v > 1000000000UL || text[0] == '-')
        return -1;
    *out = (unsigned)v;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return s_usage("which mode?");
    if (strcmp(argv[1], "leak") == 0)
        s_cfg.mode = MODE_LEAK;
    else if (strcmp(argv[1], "fixed") == 0)
        s_cfg.mode = MODE_FIXED;
    else if (strcmp(argv[1], "plateau") == 0)
        s_cfg.mode = MODE_PLATEAU;
    else
        return s_usage("unknown mode");
    for (int i = 2; i < argc; i += 2) {
        static const char *const names[] = {"--tasks", "--threads", "--task-ms", "--client-kib", "--block-mib"};
        unsigned *fields[] = {&s_cfg.tasks, &s_cfg.threads, &s_cfg.task_ms, &s_cfg.client_kib, &s_cfg.block_mib};
        size_t k = 0;
        while (k < 5 && strcmp(argv[i], names[k]) != 0)
            k++;
        if (k == 5 || i + 1 >= argc || s_number(argv[i + 1], fields[k]) < 0)
            return s_usage("bad option");
    }
    if (s_cfg.threads == 0 || s_cfg.threads > 1024)
        return s_usage("--threads must be 1..1024");

    if (s_cfg.mode == MODE_PLATEAU) {
        size_t n = (size_t)s_cfg.block_mib << 20;
        unsigned char *b = malloc(n ? n : 1);
        if (!b) {
            fprintf(stderr, "leaky_pool: cannot allocate %u MiB\n", s_cfg.block_mib);
            return 1;
        }
        memset(b, 0x5a, n);
        s_block = b;
    }

    pthread_t *tids = calloc(s_cfg.threads, sizeof(*tids));
    if (!tids)
        return 1;
    for (unsigned i = 0; i < s_cfg.threads; i++)
        if (pthread_create(&tids[i], NULL, s_worker, NULL) != 0) {
            fprintf(stderr, "leaky_pool: cannot start thread %u\n", i);
            return 1;
        }
    for (unsigned i = 0; i < s_cfg.threads; i++)
        pthread_join(tids[i], NULL);
    free(tids);

    static const char *const mode_names[] = {"leak", "fixed", "plateau"};
    printf("%s: %u tasks, %u clients, checksum %llu\n", mode_names[s_cfg.mode], s_cfg.tasks, s_clients_made,
           (unsigned long long)(s_checksum + (s_block ? s_block[0] : 0)));
    /* The registry and the block are left to the exit, as in the real bug: nothing ever empties the cache. */
    return 0;
}
