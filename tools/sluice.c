/* The sluice command. Uses only the public API of libsluice (include/sluice/). */
#include "sluice/sluice.h"
#include "cli_parse.h"
#include "metrics.h"
#include "report.h"
#include "watch.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Exit codes (documented in the README and in `sluice --help`). */
enum {
    EXIT_OK = 0,      /* everything done */
    EXIT_PARTIAL = 1, /* some objects failed; the others were done */
    EXIT_USAGE = 2,   /* bad command line, URL, glob or operation; nothing was done */
    EXIT_FATAL = 3,   /* the job could not run: source missing or unreadable, destination unusable, listing failed */
    EXIT_SIGINT = 130,
    EXIT_SIGPIPE = 141,
    EXIT_SIGTERM = 143,
};

#define MAX_GLOBS 64
#define MAX_EXEC_WORDS 256
#define MAX_HEADERS 16
#define MAX_PLUGIN_ARGS 256
#define SHARDS_MAX 1000000

typedef struct cli {
    const char *command; /* "cp", "map", ... */
    const char *args[3]; /* positional arguments */
    int nargs;
    const char *include[MAX_GLOBS];
    size_t include_count;
    const char *exclude[MAX_GLOBS];
    size_t exclude_count;
    unsigned jobs;
    uint64_t memory_limit;
    uint64_t slice_size;   /* --slice-size; 0: the default */
    bool composite;        /* --composite-upload */
    const char *shard;     /* --shard I/N or "auto" */
    unsigned shards;       /* --shards N (for --shard auto on Kubernetes) */
    const char *metrics_addr; /* --metrics-addr HOST:PORT */
    uint64_t list_skipped; /* ls/du: directories that could not be listed (each reported) */
    bool dry_run, quiet, json, long_format, recursive, use_shell, force;
    bool all;    /* rm --all: a whole bucket or the file-system root may be deleted */
    bool verify; /* cat --verify: nothing reaches stdout before the whole object has passed its checks; cp, sync, map:
                  * complete local outputs are read back and redone if torn */
    bool fsync;  /* cp, sync, map --fsync: local outputs durable before they count as done */
    const char *report, *failures, *suffix, *exec, *op, *range;
    const char *plugin;                           /* map --plugin LIB.so */
    const char *worker;                           /* map --worker CMD */
    unsigned worker_max_objects;                  /* --worker-max-objects; 0 = no limit */
    uint64_t worker_max_rss;                      /* --worker-max-rss; 0 = no limit */
    const char *plugin_args[MAX_PLUGIN_ARGS + 1]; /* --plugin-arg K=V */
    size_t plugin_arg_count;
    const char *retry_failed;             /* --retry-failed FILE */
    unsigned grace_ms;                    /* --grace; 0 = the library's default */
    unsigned timeout_ms;                  /* --timeout; 0 = no limit */
    bool timeout_given;                   /* --timeout, even 0: refused outside map --exec */
    const char *timeline, *chart;         /* --timeline, --chart */
    unsigned mem_interval_ms;             /* --mem-interval; 0 = the library's default */
    const char *headers[MAX_HEADERS + 1]; /* --header, NULL-terminated */
    size_t header_count;
    sl_store_options store; /* --endpoint, --token-file, --retries, ... */
    bool progress;          /* stderr is a terminal and not quiet */
    bool progress_shown;
    bool stdout_broken; /* a write to stdout failed */
    bool stdout_epipe;  /* ... because its reader went away (recorded at the write: errno is per thread) */
    char *exec_words;   /* storage for the split --exec command */
    const char *exec_argv[MAX_EXEC_WORDS + 1];
} cli;

static const char *s_prog = "sluice";
static sl_job *volatile s_job;
static volatile sig_atomic_t s_signal;       /* the first SIGINT/SIGTERM */
static volatile sig_atomic_t s_signal_count; /* how many have come */
/* Bound to the main thread (sl_thread_bind_abort): once set, its requests are abandoned at once. These are all the
 * requests of ls, du and cat, and a job's start-up requests (sl_job_new: the source probe, the bucket check), which
 * run before there is a job to interrupt. */
static volatile sig_atomic_t s_stop_requests;
/* The grace of a job interrupted while starting: the time a signal gives in-flight work (--grace; 0 for ls, du, cat:
 * they have nothing to finish), and whether the timer that ends it (SIGALRM) is armed. */
static unsigned s_grace_ms;
static volatile sig_atomic_t s_grace_timer;

static int s_signal_exit(int sig);

/* After a second signal, how long the abort may take before the process leaves anyway. */
#define S_HARD_STOP_S 5

static void s_err(const cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_err(const cli *c, const char *fmt, ...) {
    char small[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    char *text = small;
    if (n >= (int)sizeof(small) && (text = malloc((size_t)n + 1)) != NULL) {
        va_start(ap, fmt);
        vsnprintf(text, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    fprintf(stderr, "%s: %s%s", s_prog, c && c->command ? c->command : "", c && c->command ? ": " : "");
    sl_cli_put_one_line(stderr, text ? text : small);
    fputc('\n', stderr);
    if (text && text != small)
        free(text);
}

/* ---- help ---- */

static const char s_main_help[] =
    "usage: sluice COMMAND [OPTIONS] ARGS\n"
    "\n"
    "Run one job over every object under a bucket or a directory: fast, in parallel, in flat memory.\n"
    "\n"
    "commands:\n"
    "  ls [-l] [-r] [--json] URL      list objects (sorted by key bytes)\n"
    "  du URL                         count objects and bytes under a prefix\n"
    "  cat URL [--range A-B]          write one object to stdout (--verify: only once it is checked)\n"
    "  cp SRC DST                     copy every object under SRC to DST\n"
    "  sync SRC DST                   copy only objects not already identical at DST\n"
    "  map SRC DST --exec CMD         pipe each object through CMD; its stdout is the output object\n"
    "  map SRC DST --worker CMD       hand each object to a long-lived CMD per worker thread\n"
    "  map SRC DST --op NAME          run a built-in operation (md5, crc32c, sha256, count, gunzip)\n"
    "  map SRC DST --plugin LIB.so    run your own C operation in process (sluice/plugin.h)\n"
    "  rm [-r] URL                    delete one object, or with -r every object under a prefix\n"
    "  report PLACE                   merge the reports the shards of a job wrote (--report PLACE/)\n"
    "  watch [OPTIONS] -- CMD ARGS... run CMD, record its process tree's memory, say flat or growing\n"
    "\n"
    "URLs: a plain path, file:///abs/path, gs://bucket/prefix, s3://bucket/prefix\n"
    "  gs://b/p names the object p or the objects under p/; one that names neither is exit 3. When\n"
    "  both exist: ls, du, rm -r take both (keys p, p/...); cat, rm the object; cp, sync, map\n"
    "  refuse (exit 2): give gs://b/p/ for the prefix, gs://b/ --include /p for the object\n"
    "\n"
    "options of every command for buckets:\n"
    "  --endpoint URL          service endpoint (default: $CLOUD_STORAGE_EMULATOR_ENDPOINT,\n"
    "                          $STORAGE_EMULATOR_HOST, or https://storage.googleapis.com)\n"
    "  --anonymous             send no credentials (also --no-sign-request, the AWS CLI's name)\n"
    "  --token-file FILE       an OAuth2 access token (else $GOOGLE_OAUTH_ACCESS_TOKEN,\n"
    "                          $GOOGLE_APPLICATION_CREDENTIALS, gcloud's application default\n"
    "                          credentials, then the metadata server)\n"
    "  --retries N             retries of transport errors, 408, 429, 5xx (default 5)\n"
    "  --retry-initial-ms MS, --retry-max-ms MS, --retry-deadline-ms MS\n"
    "                          backoff (full jitter) bounds (defaults 100, 10000, 120000); a job\n"
    "                          stops (exit 3) once a server has answered nothing for the deadline\n"
    "  --header 'Name: value'  an extra header on every request (repeatable)\n"
    "  s3://: --endpoint URL also (else $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, the profile's\n"
    "                          endpoint_url, or AWS), credentials from the AWS chain:\n"
    "  --profile NAME          the profile of ~/.aws/credentials and ~/.aws/config (else $AWS_PROFILE)\n"
    "  --region NAME           the bucket's region (else $AWS_REGION, $AWS_DEFAULT_REGION, the\n"
    "                          profile's, us-east-1; a redirect to the bucket's own is followed)\n"
    "  --s3-path-style         address buckets as ENDPOINT/BUCKET/KEY on AWS too (always so for\n"
    "                          another endpoint)\n"
    "Run `sluice COMMAND --help` for the options of a command.\n"
    "\n"
    "exit status: 0 all done, 1 some objects failed, 2 usage error, 3 the job could not run,\n"
    "             130/143 interrupted by SIGINT/SIGTERM (in-flight objects get --grace to finish;\n"
    "             a second signal stops at once), 141 stdout closed by its reader\n";

/* Split from s_job_options_help: C11 compilers need not take string literals over 4,095 bytes. */
static const char s_shard_help[] =
    "  --shard I/N          take only the objects of shard I (0 to N-1) of N: the key's hash (FNV-1a,\n"
    "                       see the README) modulo N. N processes with I = 0..N-1 do every object\n"
    "                       once between them; each lists the whole source; resume ignores shards\n"
    "  --shard auto         I and N from the scheduler: JOB_COMPLETION_INDEX (Kubernetes Indexed Job,\n"
    "                       N from --shards N or SLUICE_SHARDS) or SLURM_ARRAY_TASK_ID/_COUNT (/_MIN)\n"
    "  --metrics-addr HOST:PORT  serve the job's counters, bytes, memory, cgroup figures and memory\n"
    "                       verdict for Prometheus at http://HOST:PORT/metrics while it runs\n"
    "                       (127.0.0.1:9464; :9464 listens on every interface, as in a pod)\n";

static const char s_job_options_help[] =
    "  --include GLOB       process only keys matching GLOB (repeatable; `*.csv` matches the last\n"
    "                       path component, `dir/**.csv` the whole key)\n"
    "  --exclude GLOB       skip keys matching GLOB (repeatable; wins over --include)\n"

    "  -j, --jobs N         worker threads (default: 4 per CPU, at least 4)\n"
    "  --memory-limit SIZE  the memory budget of everything that grows with workers or upload chunks\n"
    "                       (buffers, clients, workers' state), e.g. 64M, 1G (default 256M, or a\n"
    "                       quarter of the container's memory limit when that is smaller); -j is\n"
    "                       lowered to what it can feed. Past 80 % of the container's limit (memory\n"
    "                       other than page cache) sluice warns once and halves its active workers\n"
    "  --dry-run            list what would be done, change nothing\n"
    "  --force              redo every object, even those whose output is already complete\n"
    "  --report FILE        write a JSON report: counts, bytes, duration, failures, peak RSS, and\n"
    "                       for an interrupted run the signal and what was left undone\n"
    "  --failures FILE      write one JSON line per failed object: {\"key\",\"error\",\"code\",\n"
    "                       \"attempts\",\"http_status\"}; objects abandoned by an interruption too\n"
    "  --retry-failed FILE  process exactly the objects named in FILE, a --failures log of an earlier\n"
    "                       run with the same SRC and DST (read line by line; each key is looked up\n"
    "                       again; one that no longer exists fails). A malformed line: exit 2\n"
    "  --grace DURATION     on SIGINT/SIGTERM, stop taking objects and give those in flight this long\n"
    "                       to finish (e.g. 30s, 500ms, 2m; plain number: seconds; default 25s;\n"
    "                       0: none, abandon at once; one that would round to 0 ms is refused), then\n"
    "                       abandon them: commands killed, uploads dropped, nothing half-written\n"
    "                       left under a final name. A second signal abandons them at once\n"
    "  --timeline FILE.csv  write sluice's own memory every --mem-interval as CSV: t_s, rss_bytes,\n"
    "                       objects, bytes, cgroup_usage_bytes, cgroup_limit_bytes\n"
    "  --chart FILE.svg     write an SVG chart of sluice's memory over the run with the verdict\n"
    "                       (flat or growing) in its title\n"
    "  --mem-interval MS    milliseconds between memory samples (default 1000)\n"
    "                       --report, --failures, --timeline and --chart are checked before anything\n"
    "                       runs (exit 3 if one cannot be written) and written like `> FILE`: a\n"
    "                       device or FIFO is written into, a link followed, a regular file replaced\n"
    "                       whole (report, chart). One that fails during the run (a full disk) stops\n"
    "                       the job: exit 3\n"
    "  -q, --quiet          no progress line, no summary, no per-failure lines\n"
    "  --upload-chunk SIZE  gs://: objects up to SIZE go up in one request, larger ones in resumable\n"
    "                       chunks of SIZE (default 8M); SIZE must be a multiple of 256K (another is\n"
    "                       refused, naming the two nearest). s3://: the same, in a multipart upload\n"
    "                       of parts of SIZE (AWS takes parts of 5M or more)\n"
    "  --slice-size SIZE    cp/sync from gs:// to a local directory: an object bigger than SIZE is read\n"
    "                       in slices of SIZE by several workers at once (ranged reads of the listed\n"
    "                       generation into one temporary file), committed only if the slices'\n"
    "                       CRC32Cs combine to the object's (default 64M; 0: never slice)\n"
    "  --composite-upload   cp/sync from a local directory to gs://: an object bigger than\n"
    "                       --slice-size goes up as parts by several workers at once, composed into\n"
    "                       the output (checked by CRC32C) and deleted. The output is a composite\n"
    "                       object: no MD5 (hence not the default)\n"
    "  -h, --help           this help\n";

static const char s_resume_help[] =
    "Rerunning is resuming: an object whose output is already complete is skipped (\"skipped\" in the\n"
    "summary and the report) unless --force is given. Each output records the fingerprint of its source\n"
    "(size, generation or mtime, CRC32C when known) and of the job (cp/sync, the --op, the command, or\n"
    "the plugin's name, version and --plugin-arg values); an output is complete when that record matches\n"
    "the source as it is now. For cp and sync, an output without a record is complete when it has the\n"
    "same size and CRC32C as the source (checksums from the store's metadata, else read from both\n"
    "sides). map outputs without a record are redone. The record is the xattr user.sluice.source (local;\n"
    "a local output changed since sluice wrote it loses it, and a file system without user xattrs keeps\n"
    "none) or the custom metadata sluice-source (gs://). Leftover temp files of a killed run are removed\n"
    "by the rerun.\n\n"
    "Local outputs are committed atomically (temp file, then rename): a run killed at any moment leaves\n"
    "only complete outputs under their names. They are not synced to disk unless --fsync is given:\n"
    "  --fsync     every local output is on disk (its bytes, its record and its name survive a power\n"
    "              loss or a kernel crash) before it counts as done; the commits of all workers are\n"
    "              grouped, one syncfs for each batch of outputs and one fsync per directory\n"
    "  --verify    read back every local output its record says is complete, and redo it unless its\n"
    "              bytes still have the CRC32C recorded when it was written: finds outputs torn by a\n"
    "              power loss after a run without --fsync (which a plain rerun skips)\n\n";

static void s_command_help(const char *command) {
    if (strcmp(command, "ls") == 0) {
        fputs("usage: sluice ls [-l] [-r] [--json] [--include GLOB] [--exclude GLOB] URL\n\n"
              "List objects under URL in byte order of their keys, streaming (constant memory).\n"
              "Without -r, one level: sub-prefixes are shown as `name/`.\n\n"
              "  -l, --long    size, last-modified time (UTC) and key; a TOTAL line at the end\n"
              "  -r, --recursive  every object under URL\n"
              "  --json        one JSON object per line (key, size, updated, crc32c/md5 when known)\n"
              "  --include/--exclude GLOB  filter keys (see `sluice cp --help`)\n\n"
              "Keys are printed relative to URL; control characters and backslashes are escaped\n"
              "(\\n, \\t, \\xHH, \\\\) so that each line is one key. --json gives exact names.\n",
              stdout);
    } else if (strcmp(command, "du") == 0) {
        fputs("usage: sluice du [--json] [--include GLOB] [--exclude GLOB] URL\n\n"
              "Count objects and bytes under URL (recursive).\n",
              stdout);
    } else if (strcmp(command, "cat") == 0) {
        fputs("usage: sluice cat [--range A-B] [--verify] URL\n\n"
              "Write one object to stdout, streaming: each block goes out as it arrives. The object's\n"
              "checks (its size, and for gs:// its CRC32C) can only be made once its last byte has\n"
              "arrived: an object that fails them ends in exit 3 and a line saying that the N bytes\n"
              "already written to stdout are not the object's.\n\n"
              "  --range A-B   bytes A to B inclusive (0-based); A- from A to the end; -N the last N bytes.\n"
              "                A range has no checksum: a CRC32C covers the whole object, so a range is\n"
              "                checked only for its length (and against the server's Content-Range)\n"
              "  --verify      write nothing until the whole object has arrived and passed its checks:\n"
              "                it is first written to an unlinked temporary file in $TMPDIR (default\n"
              "                /tmp), which needs room for the whole object (memory stays the same), then\n"
              "                copied to stdout. A failed check leaves stdout empty. With --range it holds\n"
              "                back a range until its length is checked\n",
              stdout);
    } else if (strcmp(command, "cp") == 0 || strcmp(command, "sync") == 0) {
        bool sync = strcmp(command, "sync") == 0;
        printf("usage: sluice %s [OPTIONS] SRC DST\n\n", command);
        fputs(sync ? "Copy every object under SRC to DST under the same key, skipping objects that are already\n"
                     "identical at DST. Nothing at DST is deleted.\n"
                   : "Copy every object under SRC to DST under the same key, overwriting outputs that are not\n"
                     "complete. SRC may be one object.\n",
              stdout);
        fputs("DST is always a directory or prefix. Each output is committed atomically (local: temp file,\n"
              "then rename), so an interrupted run never leaves a partial file under a final name.\n\n",
              stdout);
        fputs(s_resume_help, stdout);
        fputs(s_job_options_help, stdout);
        fputs(s_shard_help, stdout);
    } else if (strcmp(command, "report") == 0) {
        fputs("usage: sluice report [--json] [--shards N] PLACE\n\n"
              "Merge the reports the shards of one job wrote with --report PLACE/ (shard-I-of-N.json in a\n"
              "local directory, gs:// or s3:// prefix): which shards are there, missing or did not finish,\n"
              "the totals, the first failures and where the failure logs are, the memory verdict of every\n"
              "shard and the worst.\n\n"
              "  --json        one JSON object instead of text\n"
              "  --shards N    merge the reports of N shards when PLACE holds reports of several runs\n\n"
              "exit status: 0 every shard finished and no object failed, 1 every shard finished and some\n"
              "objects failed, 2 usage (reports of different shard counts without --shards), 3 shards\n"
              "missing or not finished, or no report\n",
              stdout);
    } else if (strcmp(command, "map") == 0) {
        fputs("usage: sluice map SRC DST --exec CMD [--shell] [OPTIONS]\n"
              "       sluice map SRC DST --worker CMD [--shell] [--worker-max-objects N] [--worker-max-rss SIZE]\n"
              "                  [OPTIONS]\n"
              "       sluice map SRC DST --op NAME [OPTIONS]\n"
              "       sluice map SRC DST --plugin LIB.so [--plugin-arg KEY=VALUE]... [OPTIONS]\n\n"
              "For each object under SRC, run an operation and write its output to DST under the same key\n"
              "(plus --suffix). With DST `-`, one JSON line per object goes to stdout instead.\n\n"
              "  --exec CMD    run CMD once per object with the object's bytes on stdin; its stdout becomes\n"
              "                the output object. CMD is split into words (quotes and backslashes work as in\n"
              "                a shell) and run without a shell. The child's environment has SLUICE_KEY,\n"
              "                SLUICE_SIZE, SLUICE_URL and SLUICE_OUTPUT_KEY. A non-zero exit fails that\n"
              "                object only; its stderr goes into the failure record. With DST `-`, the\n"
              "                output (up to 64 KiB once JSON-escaped) is the \"output\" field of the JSON line.\n"
              "  --shell       run CMD with /bin/sh -c; object names reach the script only through the\n"
              "                environment (\"$SLUICE_KEY\"), never pasted into the command string\n"
              "  --timeout DURATION  with --exec: time limit per object from the command's start to its\n"
              "                exit (e.g. 30s, 500ms, 2m; plain number: seconds; default 0: none; one that\n"
              "                would round to 0 ms is refused). Past it the command (its process group)\n"
              "                gets SIGTERM, 2 s later SIGKILL, and that object fails alone: \"command timed\n"
              "                out after 30s (killed)\". With --worker: from a request to its answer, and\n"
              "                from a worker's start to its hello\n"
              "  --worker CMD  start CMD once per worker thread (at its first object) and hand it every object\n"
              "                that thread takes, one at a time, over its stdin/stdout (the protocol in\n"
              "                docs/worker-protocol.md; python/sluice_worker.py is its Python side). CMD is\n"
              "                split and run as --exec's (--shell too), with SLUICE_WORKER_ID (0..N-1) and\n"
              "                SLUICE_JOBS (N) in its environment. The answer is the output object, or result\n"
              "                members for the JSON line. An object whose worker fails, crashes, breaks the\n"
              "                protocol or passes --timeout fails alone (with the worker's stderr) and the\n"
              "                worker is replaced; 5 failed starts in a row stop the job (exit 3). At the end\n"
              "                each worker gets EOF and --grace to exit, then SIGTERM/SIGKILL to its group\n"
              "  --worker-max-objects N  replace a worker after N objects (leaky code: a fresh process)\n"
              "  --worker-max-rss SIZE   replace a worker once the resident memory of its process tree\n"
              "                passes SIZE (e.g. 500M), checked after each object\n"
              "  --op NAME     a built-in operation:\n",
              stdout);
        for (const char *const *n = sl_job_op_names(); *n; n++)
            printf("                  %-8s %s\n", *n, sl_job_op_describe(*n));
        fputs("                md5/crc32c/sha256/count write their JSON result as the output object;\n"
              "                gunzip writes the decompressed bytes\n"
              "  --plugin LIB.so  an operation of your own in a shared library that defines sluice_plugin\n"
              "                (sluice/plugin.h; build it with `pkg-config --cflags --libs sluice`), run in\n"
              "                process with per-thread state: thread_init once per worker thread, process\n"
              "                per object. LIB.so is a path (a bare name is a file in the current directory).\n"
              "                A file that is missing, unreadable or cannot be loaded: exit 3; a library that\n"
              "                is no sluice plugin or was built for another plugin ABI: exit 2; a thread_init\n"
              "                that fails stops the job: exit 3\n"
              "  --plugin-arg KEY=VALUE  handed to the plugin's thread_init (repeatable, each key once)\n"
              "  --suffix S    append S to each output key (e.g. .md5, .out)\n\n",
              stdout);
        fputs(s_resume_help, stdout);
        fputs(s_job_options_help, stdout);
        fputs(s_shard_help, stdout);
    } else if (strcmp(command, "rm") == 0) {
        fputs("usage: sluice rm [-r] [OPTIONS] URL\n\n"
              "Delete the object URL names, or with -r every object under the prefix URL (in parallel,\n"
              "listing and deleting as a stream). Without -r a prefix that holds objects is refused (exit\n"
              "2), and a URL that names no object is exit 3. A gs:// URL that names both an object and a prefix "
              "holding objects:\n"
              "rm deletes the object, rm -r both. Try --dry-run first: it prints one JSON line per object\n"
              "that would be deleted. gs://: a delete whose answer was lost and whose retry finds the object\n"
              "gone counts as done. On local disk, directories left empty are kept.\n\n"
              "A whole bucket (gs://b, gs://b/) or the file-system root (/, however spelled, links\n"
              "resolved) is refused (exit 2), --dry-run included, unless --all confirms it.\n\n"
              "  -r, --recursive      delete every object under URL\n"
              "  --all                confirm that URL may be a whole bucket or the root directory\n",
              stdout);
        fputs(s_job_options_help, stdout);
        fputs(s_shard_help, stdout);
    } else {
        fputs(s_main_help, stdout);
    }
}

/* ---- argument parsing ---- */

/* Splits a command string into words the way a shell would split it, without any expansion: whitespace separates
 * words, '...' is literal, "..." allows \" \\ \$ \` escapes, a backslash outside quotes escapes the next byte. */
static bool s_split_words(cli *c, const char *opt, const char *cmd) {
    size_t len = strlen(cmd);
    c->exec_words = malloc(len + 1);
    if (!c->exec_words)
        return false;
    char *o = c->exec_words;
    size_t n = 0;
    const char *p = cmd;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (!*p)
            break;
        if (n == MAX_EXEC_WORDS) {
            s_err(c, "%s: more than %d words", opt, MAX_EXEC_WORDS);
            return false;
        }
        c->exec_argv[n++] = o;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
            if (*p == '\'') {
                const char *q = strchr(p + 1, '\'');
                if (!q) {
                    s_err(c, "%s: unterminated ' in: %s", opt, cmd);
                    return false;
                }
                memcpy(o, p + 1, (size_t)(q - p - 1));
                o += q - p - 1;
                p = q + 1;
            } else if (*p == '"') {
                p++;
                while (*p && *p != '"') {
                    if (*p == '\\' && p[1] && strchr("\"\\$`", p[1]))
                        p++;
                    *o++ = *p++;
                }
                if (*p != '"') {
                    s_err(c, "%s: unterminated \" in: %s", opt, cmd);
                    return false;
                }
                p++;
            } else if (*p == '\\' && p[1]) {
                *o++ = p[1];
                p += 2;
            } else {
                *o++ = *p++;
            }
        }
        *o++ = '\0';
    }
    c->exec_argv[n] = NULL;
    if (n == 0) {
        s_err(c, "%s: empty command", opt);
        return false;
    }
    return true;
}

typedef enum { OPT_FLAG, OPT_VALUE } opt_kind;
typedef struct opt_def {
    const char *long_name;
    char short_name;
    opt_kind kind;
    unsigned commands; /* bit per command that accepts it */
    int id;
} opt_def;

enum { C_LS = 1, C_DU = 2, C_CAT = 4, C_CP = 8, C_SYNC = 16, C_MAP = 32, C_RM = 64, C_REPORT = 128 };
#define C_JOBS (C_CP | C_SYNC | C_MAP | C_RM)
enum {
    O_HELP = 1,
    O_LONG,
    O_RECURSIVE,
    O_JSON,
    O_RANGE,
    O_INCLUDE,
    O_EXCLUDE,
    O_JOBS,
    O_MEMORY,
    O_DRY_RUN,
    O_QUIET,
    O_REPORT,
    O_FAILURES,
    O_SUFFIX,
    O_EXEC,
    O_WORKER,
    O_WORKER_MAX_OBJECTS,
    O_WORKER_MAX_RSS,
    O_SHELL,
    O_OP,
    O_PLUGIN,
    O_PLUGIN_ARG,
    O_ENDPOINT,
    O_ANONYMOUS,
    O_S3_PATH_STYLE,
    O_PROFILE,
    O_REGION,
    O_TOKEN_FILE,
    O_RETRIES,
    O_RETRY_INITIAL,
    O_RETRY_MAX,
    O_RETRY_DEADLINE,
    O_UPLOAD_CHUNK,
    O_HEADER,
    O_TIMELINE,
    O_CHART,
    O_MEM_INTERVAL,
    O_GRACE,
    O_RETRY_FAILED,
    O_FORCE,
    O_TIMEOUT,
    O_ALL,
    O_VERIFY,
    O_SLICE_SIZE,
    O_COMPOSITE,
    O_DURABLE,
    O_SHARD,
    O_SHARDS,
    O_METRICS_ADDR,
};

static const opt_def s_opts[] = {
    {"help", 'h', OPT_FLAG, 0xff, O_HELP},
    {"long", 'l', OPT_FLAG, C_LS, O_LONG},
    {"recursive", 'r', OPT_FLAG, C_LS | C_CP | C_RM, O_RECURSIVE},
    {"json", 0, OPT_FLAG, C_LS | C_DU | C_REPORT, O_JSON},
    {"range", 0, OPT_VALUE, C_CAT, O_RANGE},
    {"include", 0, OPT_VALUE, C_LS | C_DU | C_JOBS, O_INCLUDE},
    {"exclude", 0, OPT_VALUE, C_LS | C_DU | C_JOBS, O_EXCLUDE},
    {"jobs", 'j', OPT_VALUE, C_JOBS, O_JOBS},
    {"memory-limit", 0, OPT_VALUE, C_JOBS, O_MEMORY},
    {"dry-run", 'n', OPT_FLAG, C_JOBS, O_DRY_RUN},
    {"quiet", 'q', OPT_FLAG, 0xff, O_QUIET},
    {"report", 0, OPT_VALUE, C_JOBS, O_REPORT},
    {"failures", 0, OPT_VALUE, C_JOBS, O_FAILURES},
    {"suffix", 0, OPT_VALUE, C_MAP, O_SUFFIX},
    {"exec", 0, OPT_VALUE, C_MAP, O_EXEC},
    {"worker", 0, OPT_VALUE, C_MAP, O_WORKER},
    {"worker-max-objects", 0, OPT_VALUE, C_MAP, O_WORKER_MAX_OBJECTS},
    {"worker-max-rss", 0, OPT_VALUE, C_MAP, O_WORKER_MAX_RSS},
    {"shell", 0, OPT_FLAG, C_MAP, O_SHELL},
    {"op", 0, OPT_VALUE, C_MAP, O_OP},
    {"plugin", 0, OPT_VALUE, C_MAP, O_PLUGIN},
    {"plugin-arg", 0, OPT_VALUE, C_MAP, O_PLUGIN_ARG},
    {"endpoint", 0, OPT_VALUE, 0xff, O_ENDPOINT},
    {"anonymous", 0, OPT_FLAG, 0xff, O_ANONYMOUS},
    {"no-sign-request", 0, OPT_FLAG, 0xff, O_ANONYMOUS},
    {"s3-path-style", 0, OPT_FLAG, 0xff, O_S3_PATH_STYLE},
    {"profile", 0, OPT_VALUE, 0xff, O_PROFILE},
    {"region", 0, OPT_VALUE, 0xff, O_REGION},
    {"token-file", 0, OPT_VALUE, 0xff, O_TOKEN_FILE},
    {"retries", 0, OPT_VALUE, 0xff, O_RETRIES},
    {"retry-initial-ms", 0, OPT_VALUE, 0xff, O_RETRY_INITIAL},
    {"retry-max-ms", 0, OPT_VALUE, 0xff, O_RETRY_MAX},
    {"retry-deadline-ms", 0, OPT_VALUE, 0xff, O_RETRY_DEADLINE},
    {"upload-chunk", 0, OPT_VALUE, C_JOBS, O_UPLOAD_CHUNK},
    {"slice-size", 0, OPT_VALUE, C_CP | C_SYNC, O_SLICE_SIZE},
    {"composite-upload", 0, OPT_FLAG, C_CP | C_SYNC, O_COMPOSITE},
    {"header", 0, OPT_VALUE, 0xff, O_HEADER},
    {"timeline", 0, OPT_VALUE, C_JOBS, O_TIMELINE},
    {"chart", 0, OPT_VALUE, C_JOBS, O_CHART},
    {"mem-interval", 0, OPT_VALUE, C_JOBS, O_MEM_INTERVAL},
    {"grace", 0, OPT_VALUE, C_JOBS, O_GRACE},
    {"retry-failed", 0, OPT_VALUE, C_JOBS, O_RETRY_FAILED},
    {"force", 0, OPT_FLAG, C_JOBS, O_FORCE},
    {"timeout", 0, OPT_VALUE, C_JOBS, O_TIMEOUT},
    {"all", 0, OPT_FLAG, C_RM, O_ALL},
    {"verify", 0, OPT_FLAG, C_CAT | C_CP | C_SYNC | C_MAP, O_VERIFY},
    {"fsync", 0, OPT_FLAG, C_CP | C_SYNC | C_MAP, O_DURABLE},
    {"shard", 0, OPT_VALUE, C_JOBS, O_SHARD},
    {"shards", 0, OPT_VALUE, C_JOBS | C_REPORT, O_SHARDS},
    {"metrics-addr", 0, OPT_VALUE, C_JOBS, O_METRICS_ADDR},
};

static unsigned s_command_bit(const char *command) {
    static const char *const names[] = {"ls", "du", "cat", "cp", "sync", "map", "rm", "report"};
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(command, names[i]) == 0)
            return 1u << i;
    return 0;
}

/* Applies one option. Returns -1 on a usage error, 1 if help was printed, 0 otherwise. */
/* A duration option's value (sl_cli_parse_duration_ms): 0, or -1 with the usage error said. zero_means says what 0
 * stands for, which a value that rounds to 0 ms must not silently become. */
static int s_duration_opt(cli *c, const char *name, const char *value, const char *zero_means, uint64_t *ms) {
    sl_cli_duration_rc rc = sl_cli_parse_duration_ms(value, ms);
    if (rc == SL_CLI_DURATION_OK)
        return 0;
    if (rc == SL_CLI_DURATION_ZERO)
        s_err(c, "%s '%s' is shorter than 1 ms and would round to 0, which means %s: give at least 1ms (or 0)", name,
              value, zero_means);
    else
        s_err(c, "%s takes a duration up to 24h such as 30s, 500ms, 2m or a number of seconds, not '%s'", name, value);
    return -1;
}

/* A multiple of 256 KiB as --upload-chunk takes it: "8M", "1G", "768K". */
static void s_chunk_text(uint64_t bytes, char *buf, size_t cap) {
    if (bytes && bytes % (1ull << 30) == 0)
        snprintf(buf, cap, "%lluG", (unsigned long long)(bytes >> 30));
    else if (bytes && bytes % (1ull << 20) == 0)
        snprintf(buf, cap, "%lluM", (unsigned long long)(bytes >> 20));
    else
        snprintf(buf, cap, "%lluK", (unsigned long long)(bytes >> 10));
}

static int s_apply(cli *c, const opt_def *o, const char *value) {
    switch (o->id) {
    case O_HELP:
        s_command_help(c->command);
        return 1;
    case O_LONG:
        c->long_format = true;
        break;
    case O_RECURSIVE:
        c->recursive = true;
        break;
    case O_JSON:
        c->json = true;
        break;
    case O_RANGE:
        c->range = value;
        break;
    case O_INCLUDE:
    case O_EXCLUDE: {
        const char **v = o->id == O_INCLUDE ? c->include : c->exclude;
        size_t *n = o->id == O_INCLUDE ? &c->include_count : &c->exclude_count;
        if (*n == MAX_GLOBS) {
            s_err(c, "at most %d --%s patterns", MAX_GLOBS, o->long_name);
            return -1;
        }
        if (sl_glob_check(value) < 0) {
            s_err(c, "--%s %s: %s", o->long_name, value, sl_last_error());
            return -1;
        }
        v[(*n)++] = value;
        break;
    }
    case O_JOBS:
        if (!sl_cli_parse_uint(value, 1, 1024, &c->jobs)) {
            s_err(c, "-j/--jobs takes a whole number from 1 to 1024, not '%s'", value);
            return -1;
        }
        break;
    case O_MEMORY:
        /* How much is enough depends on the stores: the job says, naming the least it can work with. */
        if (!sl_cli_parse_size(value, &c->memory_limit) || c->memory_limit == 0) {
            s_err(c, "--memory-limit takes a size such as 64M or 1G, not '%s'", value);
            return -1;
        }
        break;
    case O_DRY_RUN:
        c->dry_run = true;
        break;
    case O_FORCE:
        c->force = true;
        break;
    case O_ALL:
        c->all = true;
        break;
    case O_VERIFY:
        c->verify = true;
        break;
    case O_DURABLE:
        c->fsync = true;
        break;
    case O_QUIET:
        c->quiet = true;
        break;
    case O_REPORT:
        c->report = value;
        break;
    case O_FAILURES:
        c->failures = value;
        break;
    case O_TIMELINE:
        c->timeline = value;
        break;
    case O_CHART:
        c->chart = value;
        break;
    case O_GRACE: {
        uint64_t ms;
        if (s_duration_opt(c, "--grace", value, "abandon in-flight objects at once", &ms) < 0)
            return -1;
        c->grace_ms = ms == 0 ? SL_JOB_NO_GRACE : (unsigned)ms;
        break;
    }
    case O_TIMEOUT: {
        uint64_t ms;
        if (s_duration_opt(c, "--timeout", value, "no time limit", &ms) < 0)
            return -1;
        c->timeout_ms = (unsigned)ms;
        c->timeout_given = true;
        break;
    }
    case O_RETRY_FAILED:
        c->retry_failed = value;
        break;
    case O_MEM_INTERVAL:
        if (!sl_cli_parse_uint(value, 10, 3600000, &c->mem_interval_ms)) {
            s_err(c, "--mem-interval takes a whole number of milliseconds from 10 to 3600000, not '%s'", value);
            return -1;
        }
        break;
    case O_SUFFIX:
        if (strchr(value, '/')) {
            s_err(c, "--suffix must not contain '/'");
            return -1;
        }
        c->suffix = value;
        break;
    case O_EXEC:
        c->exec = value;
        break;
    case O_SHELL:
        c->use_shell = true;
        break;
    case O_WORKER:
        c->worker = value;
        break;
    case O_WORKER_MAX_OBJECTS:
        if (!sl_cli_parse_uint(value, 1, 4000000000u, &c->worker_max_objects)) {
            s_err(c, "--worker-max-objects takes a whole number of objects from 1, not '%s'", value);
            return -1;
        }
        break;
    case O_WORKER_MAX_RSS:
        if (!sl_cli_parse_size(value, &c->worker_max_rss) || c->worker_max_rss == 0) {
            s_err(c, "--worker-max-rss takes a size above 0 (e.g. 200M, 1G), not '%s'", value);
            return -1;
        }
        break;
    case O_OP:
        c->op = value;
        break;
    case O_PLUGIN:
        c->plugin = value;
        break;
    case O_PLUGIN_ARG: {
        const char *eq = strchr(value, '=');
        if (!eq || eq == value) {
            s_err(c, "--plugin-arg takes KEY=VALUE (a non-empty key), not '%s'", value);
            return -1;
        }
        for (size_t i = 0; i < c->plugin_arg_count; i++)
            if (strncmp(c->plugin_args[i], value, (size_t)(eq - value) + 1) == 0) {
                s_err(c, "--plugin-arg %.*s is given twice", (int)(eq - value), value);
                return -1;
            }
        if (c->plugin_arg_count == MAX_PLUGIN_ARGS) {
            s_err(c, "at most %d --plugin-arg", MAX_PLUGIN_ARGS);
            return -1;
        }
        c->plugin_args[c->plugin_arg_count++] = value;
        break;
    }
    case O_ENDPOINT:
        c->store.endpoint = value;
        break;
    case O_ANONYMOUS:
        c->store.anonymous = true;
        break;
    case O_S3_PATH_STYLE:
        c->store.s3_path_style = true;
        break;
    case O_PROFILE:
        c->store.s3_profile = value;
        break;
    case O_REGION:
        c->store.s3_region = value;
        break;
    case O_TOKEN_FILE:
        c->store.token_file = value;
        break;
    case O_RETRIES:
    case O_RETRY_INITIAL:
    case O_RETRY_MAX:
    case O_RETRY_DEADLINE: {
        bool count = o->id == O_RETRIES;
        unsigned v;
        if (!sl_cli_parse_uint(value, count ? 0 : 1, count ? 100 : 86400000, &v)) {
            s_err(c, "--%s takes a whole number%s, not '%s'", o->long_name,
                  count ? " from 0 to 100" : " of milliseconds from 1 to 86400000", value);
            return -1;
        }
        if (count)
            c->store.retries = v == 0 ? SL_NO_RETRIES : v;
        else if (o->id == O_RETRY_INITIAL)
            c->store.retry_initial_ms = v;
        else if (o->id == O_RETRY_MAX)
            c->store.retry_max_ms = v;
        else
            c->store.retry_deadline_ms = v;
        break;
    }
    case O_HEADER:
        if (c->header_count == MAX_HEADERS || !strchr(value, ':')) {
            s_err(c, "--header takes 'Name: value' (at most %d)", MAX_HEADERS);
            return -1;
        }
        c->headers[c->header_count++] = value;
        c->store.headers = c->headers;
        break;
    case O_COMPOSITE:
        c->composite = true;
        break;
    case O_SHARD:
        c->shard = value;
        break;
    case O_METRICS_ADDR: {
        struct sockaddr_in sa;
        if (sl_cli_metrics_parse_addr(value, &sa) < 0) {
            s_err(c, "--metrics-addr takes HOST:PORT (127.0.0.1:9464, or :9464 for every interface), not '%s'", value);
            return -1;
        }
        c->metrics_addr = value;
        break;
    }
    case O_SHARDS:
        if (!sl_cli_parse_uint(value, 1, SHARDS_MAX, &c->shards)) {
            s_err(c, "--shards takes a whole number from 1 to %u, not '%s'", SHARDS_MAX, value);
            return -1;
        }
        break;
    case O_SLICE_SIZE:
        if (strcmp(value, "0") == 0) {
            c->slice_size = SL_JOB_NO_SLICES;
            break;
        }
        if (!sl_cli_parse_size(value, &c->slice_size) || c->slice_size < 262144) {
            s_err(c, "--slice-size takes a size of at least 256K such as 64M, or 0 (never slice), not '%s'", value);
            return -1;
        }
        break;
    case O_UPLOAD_CHUNK:
        if (!sl_cli_parse_size(value, &c->store.upload_chunk_bytes) || c->store.upload_chunk_bytes < 262144) {
            s_err(c, "--upload-chunk takes a size of at least 256K such as 8M, not '%s'", value);
            return -1;
        }
        if (c->store.upload_chunk_bytes % 262144) {
            /* GCS takes resumable chunks in whole 256 KiB quanta: a size given is used as it is, or refused. */
            uint64_t below = c->store.upload_chunk_bytes / 262144 * 262144;
            char lo[32], hi[32];
            s_chunk_text(below, lo, sizeof(lo));
            s_chunk_text(below + 262144, hi, sizeof(hi));
            s_err(c,
                  "--upload-chunk must be a multiple of 256K (GCS takes resumable chunks in 256 KiB units), not "
                  "'%s': use %s or %s",
                  value, lo, hi);
            return -1;
        }
        break;
    }
    return 0;
}

/* Parses argv after the command name. Returns -1 usage error, 1 help printed, 0 ok. */
static int s_parse(cli *c, int argc, char **argv) {
    unsigned bit = s_command_bit(c->command);
    bool options_done = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || strcmp(a, "-") == 0) {
            if (c->nargs == 3) {
                s_err(c, "too many arguments at '%s' (see `sluice %s --help`)", a, c->command);
                return -1;
            }
            c->args[c->nargs++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (a[1] == '-') {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
            const opt_def *o = NULL;
            for (size_t k = 0; k < sizeof(s_opts) / sizeof(s_opts[0]); k++)
                if (strlen(s_opts[k].long_name) == nlen && strncmp(s_opts[k].long_name, name, nlen) == 0)
                    o = &s_opts[k];
            if (!o || !(o->commands & bit)) {
                s_err(c, "unknown option '--%.*s' (see `sluice %s --help`)", (int)nlen, name, c->command);
                return -1;
            }
            const char *value = NULL;
            if (o->kind == OPT_VALUE) {
                if (eq)
                    value = eq + 1;
                else if (i + 1 < argc)
                    value = argv[++i];
                else {
                    s_err(c, "option '--%s' needs a value", o->long_name);
                    return -1;
                }
            } else if (eq) {
                s_err(c, "option '--%s' takes no value", o->long_name);
                return -1;
            }
            int r = s_apply(c, o, value);
            if (r)
                return r;
            continue;
        }
        /* A cluster of short options: -lr, -j8, -j 8. */
        for (const char *p = a + 1; *p; p++) {
            const opt_def *o = NULL;
            for (size_t k = 0; k < sizeof(s_opts) / sizeof(s_opts[0]); k++)
                if (s_opts[k].short_name == *p)
                    o = &s_opts[k];
            if (!o || !(o->commands & bit)) {
                s_err(c, "unknown option '-%c' (see `sluice %s --help`)", *p, c->command);
                return -1;
            }
            const char *value = NULL;
            if (o->kind == OPT_VALUE) {
                if (p[1])
                    value = p + 1;
                else if (i + 1 < argc)
                    value = argv[++i];
                else {
                    s_err(c, "option '-%c' needs a value", *p);
                    return -1;
                }
            }
            int r = s_apply(c, o, value);
            if (r)
                return r;
            if (value)
                break;
        }
    }
    return 0;
}

/* ---- output helpers ---- */

static void s_human_bytes(uint64_t b, char *buf, size_t cap) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

/* Writes to stdout; on failure (reader gone) remembers it so the command can stop. */
static void s_out(cli *c, const char *s, size_t len) {
    if (c->stdout_broken)
        return;
    if (fwrite(s, 1, len, stdout) != len) {
        c->stdout_broken = true;
        c->stdout_epipe = errno == EPIPE;
        /* Results of objects still in flight could not be delivered either: abandon them. */
        if (s_job)
            sl_job_abort(s_job);
    }
}

static void s_out_key(cli *c, const char *key, size_t len, const char *end) {
    char small[1024];
    size_t need = sl_text_escape(NULL, 0, key, len) + 1;
    char *buf = need <= sizeof(small) ? small : malloc(need);
    if (!buf)
        return;
    sl_text_escape(buf, need, key, len);
    s_out(c, buf, need - 1);
    s_out(c, end, strlen(end));
    if (buf != small)
        free(buf);
}

static int s_finish_stdout(cli *c) {
    if (!c->stdout_broken && fflush(stdout) != 0) {
        c->stdout_broken = true;
        c->stdout_epipe = errno == EPIPE;
    }
    if (c->stdout_broken && !c->stdout_epipe)
        s_err(c, "cannot write to stdout: %s", strerror(errno));
    return c->stdout_broken ? (c->stdout_epipe ? EXIT_SIGPIPE : EXIT_FATAL) : EXIT_OK;
}

/* ---- ls, du, cat ---- */

static int s_fatal_for(int rc) {
    return rc == SL_EBADURL || rc == SL_ENOTSUP || rc == SL_EINVAL ? EXIT_USAGE : EXIT_FATAL;
}

static bool s_selected(const cli *c, const char *key, size_t len) {
    for (size_t i = 0; i < c->exclude_count; i++)
        if (sl_glob_match(c->exclude[i], key, len))
            return false;
    if (c->include_count == 0)
        return true;
    for (size_t i = 0; i < c->include_count; i++)
        if (sl_glob_match(c->include[i], key, len))
            return true;
    return false;
}

static void s_format_time(int64_t ns, char *buf, size_t cap) {
    time_t t = (time_t)(ns / 1000000000);
    struct tm tm;
    if (ns <= 0 || !gmtime_r(&t, &tm))
        snprintf(buf, cap, "%-20s", "-");
    else
        strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void s_print_object(cli *c, const sl_object *obj) {
    char line[8192];
    if (c->json) {
        size_t n = sl_object_format_json(obj, line, sizeof(line));
        if (n < sizeof(line)) {
            line[n] = '\n';
            s_out(c, line, n + 1);
            return;
        }
        char *big = malloc(n + 2);
        if (big) {
            sl_object_format_json(obj, big, n + 1);
            big[n] = '\n';
            s_out(c, big, n + 1);
            free(big);
        }
        return;
    }
    if (c->long_format) {
        char when[32];
        if (obj->is_prefix)
            snprintf(line, sizeof(line), "%12s  %-20s  ", "", "");
        else {
            s_format_time(obj->mtime_ns, when, sizeof(when));
            snprintf(line, sizeof(line), "%12" PRIu64 "  %-20s  ", obj->size, when);
        }
        s_out(c, line, strlen(line));
    }
    s_out_key(c, obj->key, obj->key_len, "\n");
}

static void s_on_failure(void *ud, const char *key, int err, const char *error);

/* ls -r, du: a directory that may not be opened is reported like a failed object, and the listing goes on. */
static void s_on_list_skipped(void *ud, const char *key, size_t key_len, int err, const char *message) {
    cli *c = ud;
    /* The whole key, however long (an entry too deep for a key is reported under the key it would have). */
    char *k = strndup(key, key_len);
    c->list_skipped++;
    s_on_failure(c, k ? k : "?", err, message);
    free(k);
}

/* Lists (ls) or totals (du) what the listing of `lister` gives, each key after `key_prefix` (plen bytes: "p/" when the
 * URL names both an object p and a prefix p/, else nothing). Returns 0 at the end, <0 on error (SL_ENOMEM: said by
 * nobody); *seen counts every entry listed, selected or not. */
static int s_list_all(cli *c, bool du, sl_lister *lister, const char *key_prefix, size_t plen, uint64_t *count,
                      uint64_t *bytes, uint64_t *seen) {
    char *key = NULL;
    sl_object obj;
    int rc = 0;
    while (!c->stdout_broken && !s_signal) {
        int r = sl_list_next(lister, &obj);
        if (r <= 0) {
            rc = r;
            break;
        }
        (*seen)++;
        if (plen) {
            char *k = realloc(key, plen + obj.key_len + 1);
            if (!k) {
                rc = SL_ENOMEM;
                break;
            }
            key = k;
            memcpy(key, key_prefix, plen);
            memcpy(key + plen, obj.key, obj.key_len + 1);
            obj.key = key;
            obj.key_len += plen;
        }
        if (!obj.is_prefix && !s_selected(c, obj.key, obj.key_len))
            continue;
        if (!obj.is_prefix) {
            (*count)++;
            *bytes += obj.size;
        }
        if (!du)
            s_print_object(c, &obj);
    }
    free(key);
    return rc;
}

/* ls and du of a bucket URL gs://b/p that names both the object p and a prefix p/ holding objects: the object and,
 * after it, the prefix (one level: the entry "p/"; recursive: every object under it as "p/<key>"), keys relative to
 * the object's parent so that the two are told apart, in byte order. */
static int s_list_both(cli *c, bool du, sl_client *client, const char *single, uint64_t *count, uint64_t *bytes) {
    sl_object obj;
    int rc = sl_stat(client, single, &obj);
    if (rc < 0)
        return rc;
    if (s_selected(c, obj.key, obj.key_len)) {
        (*count)++;
        *bytes += obj.size;
        if (!du)
            s_print_object(c, &obj);
    }
    size_t plen = strlen(single) + 1;
    char *sub = malloc(plen + 1);
    if (!sub)
        return SL_ENOMEM;
    memcpy(sub, single, plen - 1);
    memcpy(sub + plen - 1, "/", 2);
    if (!du && !c->recursive) {
        sl_object dir = {.key = sub, .key_len = plen, .is_prefix = true};
        s_print_object(c, &dir);
        free(sub);
        return 0;
    }
    sl_store *under = NULL;
    sl_client *uc = NULL;
    sl_lister *ul = NULL;
    uint64_t seen = 0;
    sl_list_options lo = {.recursive = true};
    rc = sl_store_open(c->args[0], &c->store, &under);
    if (rc == 0)
        rc = sl_client_new(under, &uc);
    if (rc == 0)
        rc = sl_list_open(uc, &lo, &ul);
    if (rc == 0)
        rc = s_list_all(c, du, ul, sub, plen, count, bytes, &seen);
    sl_list_close(ul);
    sl_client_destroy(uc);
    sl_store_close(under);
    free(sub);
    return rc;
}

/* Lists (ls) or totals (du) the objects under the URL in c->args[0]. */
static int s_cmd_list(cli *c, bool du) {
    if (c->nargs != 1) {
        s_err(c, "expected one URL (see `sluice %s --help`)", c->command);
        return EXIT_USAGE;
    }
    sl_store *store = NULL;
    sl_client *client = NULL;
    sl_lister *lister = NULL;
    char *single = NULL;
    uint64_t count = 0, bytes = 0, seen = 0;
    bool missing = false;
    int rc = sl_store_open_source(c->args[0], &c->store, &store, &single);
    if (rc == 0)
        rc = sl_client_new(store, &client);
    int under = SL_PREFIX_MISSING; /* what a prefix named like the object holds (buckets) */
    if (rc == 0 && single && sl_store_scheme(store) != SL_SCHEME_FILE) {
        size_t n = strlen(single);
        char *sub = malloc(n + 2);
        if (sub) {
            memcpy(sub, single, n);
            memcpy(sub + n, "/", 2);
            /* An account that may read the object but not list the bucket (403) lists the object, as it always did. */
            rc = under = sl_prefix_probe(client, sub);
            rc = rc < 0 && rc != SL_EACCES ? rc : 0;
        } else {
            rc = SL_ENOMEM;
        }
        free(sub);
    }
    if (rc == 0 && single && under == SL_PREFIX_OBJECTS) {
        rc = s_list_both(c, du, client, single, &count, &bytes);
    } else if (rc == 0 && single) {
        sl_object obj;
        if ((rc = sl_stat(client, single, &obj)) == 0) {
            count = 1;
            bytes = obj.size;
            if (!du)
                s_print_object(c, &obj);
        }
    } else if (rc == 0) {
        sl_list_options lo = {.recursive = du || c->recursive, .on_skipped = s_on_list_skipped, .on_skipped_data = c};
        rc = sl_list_open(client, &lo, &lister);
        if (rc == 0)
            rc = s_list_all(c, du, lister, "", 0, &count, &bytes, &seen);
        /* A bucket has no directories: a prefix that lists nothing is missing, unless it exists all the same (the
         * root of an empty bucket, a folder placeholder). A local directory that is not there failed to open. */
        if (rc == 0 && !seen && !c->stdout_broken && !s_signal && sl_store_scheme(store) != SL_SCHEME_FILE) {
            int state = sl_prefix_probe(client, NULL);
            if (state < 0)
                rc = state;
            else
                missing = state == SL_PREFIX_MISSING;
        }
    }
    int exit_code = EXIT_OK;
    if (s_signal) {
        exit_code = s_signal_exit(s_signal); /* a request abandoned for it is no error of its own */
    } else if (missing || rc == SL_ENOMEM) {
        if (missing)
            s_err(c, "%s: no such object or prefix", c->args[0]);
        else
            s_err(c, "out of memory");
        exit_code = EXIT_FATAL;
    } else if (rc < 0) {
        s_err(c, "%s", sl_last_error());
        exit_code = s_fatal_for(rc);
    } else {
        char human[32], line[512];
        s_human_bytes(bytes, human, sizeof(human));
        if (du && c->json)
            snprintf(line, sizeof(line), "{\"objects\":%" PRIu64 ",\"bytes\":%" PRIu64 "}\n", count, bytes);
        else if (du)
            snprintf(line, sizeof(line), "%" PRIu64 " objects, %" PRIu64 " bytes (%s)\t%s\n", count, bytes, human,
                     c->args[0]);
        else if (c->long_format && !c->json)
            snprintf(line, sizeof(line), "TOTAL: %" PRIu64 " objects, %" PRIu64 " bytes (%s)\n", count, bytes, human);
        else
            line[0] = '\0';
        s_out(c, line, strlen(line));
        if (c->list_skipped)
            exit_code = EXIT_PARTIAL; /* the totals leave out what could not be listed */
    }
    sl_list_close(lister);
    sl_client_destroy(client);
    sl_store_close(store);
    free(single);
    int out_rc = s_finish_stdout(c);
    return exit_code ? exit_code : out_rc;
}

/* Writes all of buf to fd. False with errno set on failure (a full disk). */
static bool s_write_all(int fd, const unsigned char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return false;
        }
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* cat --verify: a new file in $TMPDIR (default /tmp), readable by its owner only and unlinked at once, so that it
 * disappears with the process however that ends. Returns its descriptor, or -1 with the error said. */
static int s_spool_open(cli *c, const char **dir_out) {
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    *dir_out = dir;
    char *path = NULL;
    int fd = -1;
    if (asprintf(&path, "%s/.sluice-cat-XXXXXX", dir) < 0) {
        path = NULL;
        errno = ENOMEM;
    } else if ((fd = mkostemp(path, O_CLOEXEC)) >= 0) {
        unlink(path);
    }
    if (fd < 0)
        s_err(c, "%s: --verify cannot create its temporary file in %s (TMPDIR): %s; nothing was written to stdout",
              c->args[0], dir, strerror(errno));
    free(path);
    return fd;
}

static int s_cmd_cat(cli *c) {
    if (c->nargs != 1) {
        s_err(c, "expected one URL (see `sluice cat --help`)");
        return EXIT_USAGE;
    }
    uint64_t offset = 0, length = SL_LENGTH_TO_END, expect = UINT64_MAX, written = 0, received = 0;
    int spool = -1; /* --verify: the file the object goes to first */
    const char *spool_dir = NULL;
    /* The syntax of a range is the command line's: refused before anything is looked up. */
    if (c->range && sl_range_parse(c->range, 0, &offset, &length) != 0) {
        s_err(c, "--range takes A-B, A- or -N (bytes, 0-based, inclusive), not '%s'", c->range);
        return EXIT_USAGE;
    }
    sl_store *store = NULL;
    sl_client *client = NULL;
    sl_reader *reader = NULL;
    char *key = NULL;
    int exit_code = EXIT_OK;
    int rc = sl_store_open_source(c->args[0], &c->store, &store, &key);
    if (rc == 0 && !key)
        rc = SL_EISDIR;
    if (rc == SL_EISDIR) {
        /* A bucket has no directories: a name that is neither an object nor a prefix of one is simply missing. */
        sl_lister *probe = NULL;
        sl_object first;
        sl_list_options lo = {.page_size = 1};
        int probe_rc = 1;
        if (store && (probe_rc = sl_client_new(store, &client)) == 0 &&
            (probe_rc = sl_list_open(client, &lo, &probe)) == 0)
            probe_rc = sl_list_next(probe, &first);
        sl_list_close(probe);
        if (s_signal) {
            exit_code = s_signal_exit(s_signal);
            goto done;
        }
        if (probe_rc < 0)
            s_err(c, "%s", sl_last_error());
        else if (probe_rc == 0 && sl_store_scheme(store) != SL_SCHEME_FILE)
            s_err(c, "%s: no such object (nor any object under it as a prefix)", c->args[0]);
        else
            s_err(c, "%s is a prefix or directory, not an object (use `sluice ls` to see what it holds)", c->args[0]);
        exit_code = EXIT_FATAL;
        goto done;
    }
    if (rc == 0)
        rc = sl_client_new(store, &client);
    if (rc == 0 && c->range) {
        sl_object obj;
        if ((rc = sl_stat(client, key, &obj)) == 0 && sl_range_parse(c->range, obj.size, &offset, &length) != 0) {
            s_err(c, "--range takes A-B, A- or -N (bytes, 0-based, inclusive), not '%s'", c->range);
            exit_code = EXIT_USAGE;
            goto done;
        }
        if (rc == 0 && obj.content_encoding && c->range[0] == '-') {
            /* Its size is that of its compressed bytes; the range counts decompressed ones. A fact about the object,
             * not the command line: exit 3. */
            s_err(c,
                  "%s is stored %s-compressed and read decompressed: --range -N would need its decompressed size; "
                  "use --range A- or A-B (decompressed bytes)",
                  c->args[0], obj.content_encoding);
            exit_code = EXIT_FATAL;
            goto done;
        }
        if (rc == 0 && !obj.content_encoding && offset < obj.size)
            expect = length < obj.size - offset ? length : obj.size - offset;
    }
    if (rc == 0 && c->verify && (spool = s_spool_open(c, &spool_dir)) < 0) {
        exit_code = EXIT_FATAL;
        goto done;
    }
    if (rc == 0)
        rc = sl_read_open(client, key, offset, length, NULL, &reader);
    static unsigned char buf[256 * 1024];
    if (rc == 0) {
        int64_t n;
        while (!c->stdout_broken && !s_signal && (n = sl_read(reader, buf, sizeof(buf))) != 0) {
            if (n < 0) {
                rc = (int)n;
                break;
            }
            if (spool >= 0 && !s_write_all(spool, buf, (size_t)n)) {
                s_err(c,
                      "%s: --verify cannot write its temporary file in %s (TMPDIR): %s; it needs room there for the "
                      "whole object; nothing was written to stdout",
                      c->args[0], spool_dir, strerror(errno));
                exit_code = EXIT_FATAL;
                goto done;
            }
            if (spool < 0) {
                s_out(c, (const char *)buf, (size_t)n);
                written += (uint64_t)n;
            }
            received += (uint64_t)n;
        }
        /* The store checks a range against what its answers say; the size looked up first says it too. */
        if (rc == 0 && !c->stdout_broken && !s_signal && expect != UINT64_MAX && received != expect) {
            s_err(c, "%s: received %" PRIu64 " bytes of a range of %" PRIu64 "; %s", c->args[0], received, expect,
                  spool >= 0 ? "nothing was written to stdout" : "the bytes written to stdout are not the range");
            exit_code = EXIT_FATAL;
            goto done;
        }
    }
    if (s_signal) {
        exit_code = s_signal_exit(s_signal);
    } else if (rc < 0) {
        /* Say what became of the bytes that came before the failure: a streamed cat cannot take them back. */
        if (spool >= 0 && received)
            s_err(c, "%s; nothing was written to stdout (--verify)", sl_last_error());
        else if (rc == SL_ECORRUPT && written)
            s_err(c,
                  "%s; the %" PRIu64 " bytes written to stdout are not the object's (--verify writes nothing until "
                  "the object has passed its checks)",
                  sl_last_error(), written);
        else if (written)
            s_err(c, "%s; only the object's first %" PRIu64 " bytes were written to stdout", sl_last_error(), written);
        else
            s_err(c, "%s", sl_last_error());
        exit_code = s_fatal_for(rc); /* a range past the end (SL_ERANGE) is a fact about the object: 3 */
    } else if (spool >= 0 && !c->stdout_broken) {
        /* Checked: now it goes out. */
        ssize_t n = 0;
        if (lseek(spool, 0, SEEK_SET) == 0) {
            while (!c->stdout_broken && !s_signal && (n = read(spool, buf, sizeof(buf))) != 0) {
                if (n < 0 && errno == EINTR)
                    continue;
                if (n < 0)
                    break;
                s_out(c, (const char *)buf, (size_t)n);
                written += (uint64_t)n;
            }
        }
        if (s_signal) {
            exit_code = s_signal_exit(s_signal);
        } else if (!c->stdout_broken && written != received) {
            s_err(c,
                  "%s: --verify cannot read back its temporary file in %s: %s; the %" PRIu64
                  " bytes written to stdout are only the object's first ones",
                  c->args[0], spool_dir, n < 0 ? strerror(errno) : "it is shorter than what was written", written);
            exit_code = EXIT_FATAL;
        }
    }
done:
    if (spool >= 0)
        close(spool);
    sl_read_close(reader);
    sl_client_destroy(client);
    sl_store_close(store);
    free(key);
    int out_rc = s_finish_stdout(c);
    return exit_code ? exit_code : out_rc;
}

/* ---- jobs: cp, sync, map, rm ---- */

static void s_clear_progress(cli *c) {
    if (c->progress_shown) {
        fputs("\r\033[K", stderr);
        c->progress_shown = false;
    }
}

static void s_on_failure(void *ud, const char *key, int err, const char *error) {
    cli *c = ud;
    (void)err;
    if (c->quiet)
        return;
    s_clear_progress(c);
    char small[1024];
    size_t need = sl_text_escape(NULL, 0, key, strlen(key)) + 1;
    char *buf = need <= sizeof(small) ? small : malloc(need);
    if (buf)
        sl_text_escape(buf, need, key, strlen(key));
    fprintf(stderr, "%s: %s: FAILED %s: ", s_prog, c->command, buf ? buf : "?");
    sl_cli_put_one_line(stderr, error);
    fputc('\n', stderr);
    if (buf != small)
        free(buf);
}

static void s_on_warning(void *ud, const char *message) {
    cli *c = ud;
    s_clear_progress(c);
    fprintf(stderr, "%s: warning: ", s_prog);
    sl_cli_put_one_line(stderr, message);
    fputc('\n', stderr);
}

static void s_on_result(void *ud, const char *line, size_t len) {
    cli *c = ud;
    s_out(c, line, len);
    s_out(c, "\n", 1);
}

static void s_on_progress(void *ud, const sl_job_stats *st) {
    cli *c = ud;
    char rss[32], eta[32] = "";
    s_human_bytes(sl_current_rss_bytes(), rss, sizeof(rss));
    double rate = st->elapsed_s > 0 ? (double)st->objects_done / st->elapsed_s : 0;
    double mbs = st->elapsed_s > 0 ? (double)st->bytes_read / st->elapsed_s / 1e6 : 0;
    uint64_t finished = st->objects_done + st->objects_failed;
    if (st->listing_done && rate > 0) {
        double left = (double)(st->objects_listed - finished) / rate;
        snprintf(eta, sizeof(eta), "  ETA %d:%02d", (int)(left / 60), (int)left % 60);
    }
    if (st->listing_done)
        fprintf(stderr, "\r\033[K%" PRIu64 "/%" PRIu64 " objects  %.0f/s  %.1f MB/s  RSS %s%s%s", finished,
                st->objects_listed, rate, mbs, rss, eta, st->objects_failed ? "  (some failed)" : "");
    else
        fprintf(stderr, "\r\033[K%" PRIu64 " objects (listing)  %.0f/s  %.1f MB/s  RSS %s%s", finished, rate, mbs, rss,
                st->objects_failed ? "  (some failed)" : "");
    c->progress_shown = true;
}

static int s_signal_exit(int sig) {
    return sig == SIGTERM ? EXIT_SIGTERM : EXIT_SIGINT;
}

/* Arms SIGALRM ms from now (setitimer: a plain system call, safe in a handler on Linux). */
static void s_arm_alarm_ms(unsigned ms) {
    struct itimerval it = {.it_value = {.tv_sec = ms / 1000, .tv_usec = (long)(ms % 1000) * 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
}

/* The first SIGINT/SIGTERM drains the job (in-flight objects get --grace); the second abandons what is in flight,
 * which takes a moment (commands are killed, temp files removed, the report written); past S_HARD_STOP_S, or on a
 * third signal, the process leaves at once. The exit status follows the first signal.
 *
 * Before the job exists (its start-up requests, and all of ls, du, cat) there is nothing in flight to finish, but a
 * request may hang on the server: the first signal gives it the grace (none for ls, du, cat), then the main thread's
 * requests are abandoned (s_stop_requests), and the command ends with the usual one line. A grace that runs out after
 * the job was made aborts the job: the grace counts from the signal, whatever phase it came in. */
static void s_on_signal(int sig) {
    if (sig == SIGALRM) {
        if (!s_grace_timer)
            _exit(s_signal_exit(s_signal));
        s_grace_timer = 0;
        s_stop_requests = 1;
        if (s_job)
            sl_job_abort(s_job);
        return;
    }
    int n = ++s_signal_count;
    if (n == 1)
        s_signal = sig;
    sl_job *job = s_job;
    if (n >= 3)
        _exit(s_signal_exit(s_signal));
    if (n == 1 && job) {
        sl_job_interrupt(job, sig);
    } else if (n == 1) {
        if (s_grace_ms == 0 || s_grace_ms == SL_JOB_NO_GRACE) {
            s_stop_requests = 1;
        } else {
            s_grace_timer = 1;
            s_arm_alarm_ms(s_grace_ms);
        }
    }
    if (n == 2) {
        s_grace_timer = 0;
        s_stop_requests = 1;
        if (job)
            sl_job_abort(job);
        alarm(S_HARD_STOP_S);
    }
}

/* An environment variable holding a whole number from min to max: 1 and *out, 0 when it is not set (or empty), -1 when
 * it is set to anything else (said). */
static int s_env_uint(const cli *c, const char *name, unsigned min, unsigned max, unsigned *out) {
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    if (sl_cli_parse_uint(v, min, max, out))
        return 1;
    s_err(c, "--shard auto: %s is '%s', not a whole number from %u to %u", name, v, min, max);
    return -1;
}

/* --shard I/N, or --shard auto from the scheduler's environment: a Kubernetes Indexed Job (JOB_COMPLETION_INDEX,
 * with N from --shards or SLUICE_SHARDS, which the manifest sets: Kubernetes does not export its completions) or a
 * Slurm job array (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT, and SLURM_ARRAY_TASK_MIN / _STEP for arrays that do
 * not start at 0 or step by 1). Returns 0 (index and count set; count 0 without --shard), or -1 with the usage error
 * said. */
static int s_resolve_shard(const cli *c, unsigned *index, unsigned *count) {
    *index = *count = 0;
    if (!c->shard) {
        if (c->shards) {
            s_err(c, "--shards goes with --shard auto");
            return -1;
        }
        return 0;
    }
    if (strcmp(c->shard, "auto") != 0) {
        const char *slash = strchr(c->shard, '/');
        char i_text[16];
        unsigned i, n;
        if (!slash || (size_t)(slash - c->shard) >= sizeof(i_text) || c->shards) {
            s_err(c, "--shard takes I/N (this process's shard, 0 to N-1, of N) or auto%s, not '%s'",
                  c->shards ? " (--shards goes with auto)" : "", c->shard);
            return -1;
        }
        memcpy(i_text, c->shard, (size_t)(slash - c->shard));
        i_text[slash - c->shard] = '\0';
        if (!sl_cli_parse_uint(slash + 1, 1, SHARDS_MAX, &n) || !sl_cli_parse_uint(i_text, 0, n - 1, &i)) {
            s_err(c, "--shard takes I/N with N from 1 to %u and I from 0 to N-1, not '%s'", SHARDS_MAX, c->shard);
            return -1;
        }
        *index = i;
        *count = n;
        return 0;
    }
    unsigned k8s_index, task_id, task_count, task_min = 0, task_step = 1, n = c->shards;
    int has_k8s = s_env_uint(c, "JOB_COMPLETION_INDEX", 0, SHARDS_MAX - 1, &k8s_index);
    int has_task = s_env_uint(c, "SLURM_ARRAY_TASK_ID", 0, UINT_MAX - 1, &task_id);
    int has_count = s_env_uint(c, "SLURM_ARRAY_TASK_COUNT", 1, SHARDS_MAX, &task_count);
    int has_min = s_env_uint(c, "SLURM_ARRAY_TASK_MIN", 0, UINT_MAX - 1, &task_min);
    int has_step = s_env_uint(c, "SLURM_ARRAY_TASK_STEP", 1, UINT_MAX - 1, &task_step);
    if (has_k8s < 0 || has_task < 0 || has_count < 0 || has_min < 0 || has_step < 0)
        return -1;
    if (has_k8s && has_task) {
        s_err(c, "--shard auto: both JOB_COMPLETION_INDEX (Kubernetes) and SLURM_ARRAY_TASK_ID (Slurm) are set; give "
                 "--shard I/N");
        return -1;
    }
    if (has_k8s) {
        int from_env = 0;
        if (!n && (from_env = s_env_uint(c, "SLUICE_SHARDS", 1, SHARDS_MAX, &n)) < 0)
            return -1;
        if (!n) {
            s_err(c, "--shard auto: JOB_COMPLETION_INDEX is %u, but the number of shards is unknown: give --shards N "
                     "or set SLUICE_SHARDS (the Job's completions)",
                  k8s_index);
            return -1;
        }
        if (k8s_index >= n) {
            s_err(c, "--shard auto: JOB_COMPLETION_INDEX is %u, not below the %u shards %s says", k8s_index, n,
                  from_env ? "SLUICE_SHARDS" : "--shards");
            return -1;
        }
        *index = k8s_index;
        *count = n;
        return 0;
    }
    if (has_task) {
        if (!has_count) {
            s_err(c, "--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not (run it as an sbatch "
                     "--array job, or give --shard I/N)");
            return -1;
        }
        if (n && n != task_count) {
            s_err(c, "--shard auto: --shards %u disagrees with SLURM_ARRAY_TASK_COUNT=%u", n, task_count);
            return -1;
        }
        if (!has_min && task_id >= task_count) {
            s_err(c, "--shard auto: SLURM_ARRAY_TASK_ID=%u is not below SLURM_ARRAY_TASK_COUNT=%u and "
                     "SLURM_ARRAY_TASK_MIN is not set",
                  task_id, task_count);
            return -1;
        }
        if (task_id < task_min || (task_id - task_min) % task_step != 0 ||
            (task_id - task_min) / task_step >= task_count) {
            s_err(c, "--shard auto: SLURM_ARRAY_TASK_ID=%u is not one of the SLURM_ARRAY_TASK_COUNT=%u tasks from "
                     "SLURM_ARRAY_TASK_MIN=%u by SLURM_ARRAY_TASK_STEP=%u (an array with gaps, such as --array=1,5,9? "
                     "give --shard I/N)",
                  task_id, task_count, task_min, task_step);
            return -1;
        }
        *index = (task_id - task_min) / task_step;
        *count = task_count;
        return 0;
    }
    s_err(c, "--shard auto: neither JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) nor SLURM_ARRAY_TASK_ID and "
             "SLURM_ARRAY_TASK_COUNT (a Slurm job array) is set; give --shard I/N");
    return -1;
}

static int s_cmd_report(cli *c) {
    if (c->nargs != 1) {
        s_err(c, "expected one PLACE: the directory, gs:// or s3:// prefix given to the shards' --report PLACE/");
        return EXIT_USAGE;
    }
    return sl_cli_report(c->args[0], c->json, c->shards, &c->store, stdout, stderr);
}

static int s_cmd_job(cli *c) {
    bool map = strcmp(c->command, "map") == 0, rm = strcmp(c->command, "rm") == 0;
    if (rm && c->nargs != 1) {
        s_err(c, "expected one URL (see `sluice rm --help`)");
        return EXIT_USAGE;
    }
    if (!rm && c->nargs != 2) {
        s_err(c, "expected SRC and DST (see `sluice %s --help`)", c->command);
        return EXIT_USAGE;
    }
    if (c->timeout_given && !(map && (c->exec || c->worker))) {
        s_err(c, "--timeout applies to map --exec/--worker only");
        return EXIT_USAGE;
    }
    sl_job_options o = {0};
    if (s_resolve_shard(c, &o.shard_index, &o.shard_count) < 0)
        return EXIT_USAGE;
    sl_plugin *plugin = NULL;
    if (c->plugin_arg_count && !c->plugin) {
        s_err(c, "--plugin-arg goes with --plugin");
        return EXIT_USAGE;
    }
    if (map) {
        if ((c->exec != NULL) + (c->worker != NULL) + (c->op != NULL) + (c->plugin != NULL) != 1) {
            s_err(c, "give exactly one of --exec CMD, --worker CMD, --op NAME or --plugin LIB.so (see `sluice map "
                     "--help`)");
            return EXIT_USAGE;
        }
        if (c->use_shell && !c->exec && !c->worker) {
            s_err(c, "--shell goes with --exec or --worker");
            return EXIT_USAGE;
        }
        if ((c->worker_max_objects || c->worker_max_rss) && !c->worker) {
            s_err(c, "--worker-max-objects and --worker-max-rss go with --worker");
            return EXIT_USAGE;
        }
        const char *command = c->exec ? c->exec : c->worker;
        o.kind = c->exec ? SL_JOB_EXEC : c->worker ? SL_JOB_WORKER : SL_JOB_OP;
        if (command && c->use_shell) {
            o.use_shell = true;
            o.command = command;
        } else if (command) {
            if (!s_split_words(c, c->exec ? "--exec" : "--worker", command))
                return EXIT_USAGE;
            o.argv = c->exec_argv;
        }
        o.worker_max_objects = c->worker_max_objects;
        o.worker_max_rss_bytes = c->worker_max_rss;
        o.timeout_ms = c->timeout_ms;
        o.op_name = c->op;
        o.suffix = c->suffix;
        if (c->plugin) {
            /* Loaded before the job checks anything else: a library that is no plugin is a usage error (2), one that
             * cannot be read or loaded is exit 3, like an --exec program that is missing. */
            int prc = sl_plugin_open(c->plugin, &plugin);
            if (prc < 0) {
                s_err(c, "%s", sl_last_error());
                return s_fatal_for(prc);
            }
            o.op = sl_plugin_op(plugin);
            o.op_args = c->plugin_args;
            o.op_arg_count = c->plugin_arg_count;
        }
    } else if (rm) {
        o.kind = SL_JOB_DELETE;
        o.recursive = c->recursive;
        o.all = c->all;
    } else {
        o.kind = strcmp(c->command, "sync") == 0 ? SL_JOB_SYNC : SL_JOB_COPY;
    }
    o.src_url = c->args[0];
    o.dst_url = rm ? NULL : c->args[1];
    o.include = c->include;
    o.include_count = c->include_count;
    o.exclude = c->exclude;
    o.exclude_count = c->exclude_count;
    o.jobs = c->jobs;
    /* o.shard_index, o.shard_count: s_resolve_shard above */
    o.memory_limit_bytes = c->memory_limit;
    o.slice_size_bytes = c->slice_size;
    o.composite_upload = c->composite;
    o.dry_run = c->dry_run;
    o.force = c->force;
    o.fsync = c->fsync;
    o.verify = c->verify;
    o.failures_path = c->failures;
    o.retry_failed_path = c->retry_failed;
    o.grace_ms = c->grace_ms;
    o.store_options = &c->store;
    o.timeline_path = c->timeline;
    o.chart_path = c->chart;
    o.report_path = c->report;
    o.mem_interval_ms = c->mem_interval_ms;
    o.on_warning = s_on_warning;
    o.on_failure = s_on_failure;
    o.on_result = s_on_result;
    o.on_progress = c->progress ? s_on_progress : NULL;
    o.user_data = c;
    o.progress_interval_ms = 500;

    sl_job *job = NULL;
    s_grace_ms = c->grace_ms ? c->grace_ms : SL_JOB_DEFAULT_GRACE_MS;
    int rc = sl_job_new(&o, &job);
    if (rc < 0 && s_signal) {
        /* A start-up request abandoned for the signal (or one that failed meanwhile): nothing ran. */
        s_err(c, "interrupted by %s while starting, nothing was done (%s)", s_signal == SIGTERM ? "SIGTERM" : "SIGINT",
              sl_last_error());
        sl_plugin_close(plugin);
        return s_signal_exit(s_signal);
    }
    if (rc < 0) {
        s_err(c, "%s", sl_last_error());
        sl_plugin_close(plugin);
        return s_fatal_for(rc);
    }
    sl_cli_metrics *metrics = NULL;
    if (c->metrics_addr) {
        char why[512];
        int mrc = sl_cli_metrics_start(c->metrics_addr, job, c->command, o.shard_index, o.shard_count, &metrics, why,
                                       sizeof(why));
        if (mrc != 0) {
            s_err(c, "%s", why);
            sl_job_destroy(job);
            sl_plugin_close(plugin);
            return mrc == 2 ? EXIT_USAGE : EXIT_FATAL;
        }
    }
    s_job = job;
    if (s_signal)
        sl_job_interrupt(job, s_signal);
    if (s_signal_count > 1 || s_stop_requests)
        sl_job_abort(job);
    rc = sl_job_run(job);
    sl_cli_metrics_finished(metrics);
    char *message = strdup(sl_last_error()); /* whole: it may quote a long key or path */
    s_clear_progress(c);
    int out_rc = s_finish_stdout(c);

    sl_job_stats st;
    sl_job_stats_get(job, &st);
    int exit_code = rc == 0 ? EXIT_OK : rc == SL_EPARTIAL ? EXIT_PARTIAL : EXIT_FATAL;
    if (rc == SL_ECANCELED)
        exit_code = s_signal == SIGTERM ? EXIT_SIGTERM : s_signal ? EXIT_SIGINT : out_rc ? out_rc : EXIT_FATAL;
    if (rc < 0 && rc != SL_EPARTIAL && !(rc == SL_ECANCELED && !s_signal))
        s_err(c, "%s", message ? message : sl_strerror(rc));
    free(message);
    bool fatal = rc < 0 && rc != SL_EPARTIAL && rc != SL_ECANCELED;
    if (!c->quiet && !fatal && !(rc == SL_ECANCELED && c->stdout_broken)) {
        char rb[32], wb[32], rss[32];
        s_human_bytes(st.bytes_read, rb, sizeof(rb));
        s_human_bytes(st.bytes_written, wb, sizeof(wb));
        s_human_bytes(st.peak_rss_bytes, rss, sizeof(rss));
        double rate = st.elapsed_s > 0 ? (double)st.objects_done / st.elapsed_s : 0;
        sl_mem_verdict mv;
        sl_job_mem_verdict(job, &mv);
        char stopped[128] = "";
        if (rc == SL_ECANCELED)
            snprintf(stopped, sizeof(stopped), ", %" PRIu64 " abandoned, %" PRIu64 " not started", st.objects_aborted,
                     st.objects_not_started);
        /* map --worker: sluice's own peak apart from its workers', and the verdict is on both together. */
        char workers_mem[96] = "";
        if (c->worker) {
            char wm[32];
            s_human_bytes(st.workers_peak_mem_bytes, wm, sizeof(wm));
            snprintf(workers_mem, sizeof(workers_mem), ", worker processes' peak PSS %s", wm);
        }
        fprintf(stderr,
                "%s: %s%s: %" PRIu64 " done (%" PRIu64 " skipped), %" PRIu64 " failed%s of %" PRIu64
                " objects; read %s, wrote %s in %.2f s (%.0f objects/s, %u workers, peak RSS %s%s); memory%s: %s\n",
                s_prog, c->command, c->dry_run ? " (dry run)" : "", st.objects_done, st.objects_skipped,
                st.objects_failed, stopped, st.objects_listed, rb, wb, st.elapsed_s, rate, st.workers, rss, workers_mem,
                c->worker ? " (sluice and its workers)" : "", mv.text);
    }
    /* A report that cannot be written is the job's error too: 3, unless the run already ended worse (3, or
     * interrupted) and keeps its own status. */
    if (c->report && sl_job_write_report(job, c->report) < 0) {
        s_err(c, "%s", sl_last_error());
        if (exit_code == EXIT_OK || exit_code == EXIT_PARTIAL)
            exit_code = EXIT_FATAL;
    }
    s_job = NULL;
    sl_cli_metrics_stop(metrics);
    sl_job_destroy(job);
    sl_plugin_close(plugin);
    return exit_code ? exit_code : out_rc;
}

/* glibc keeps, in every thread, a cache of freed small blocks (its tcache: up to 7 blocks of each of 64 sizes) that
 * no other thread can reuse. A job's worker threads each free blocks of many sizes for every object (libcurl's header
 * lists, the JSON of answers), so at -j 256 those caches held 9 MiB of a 71 MiB peak, for no CPU measurably saved.
 * The cache can only be sized before the process starts (the GLIBC_TUNABLES variable), so a job command executes
 * itself once more with it turned off, then puts the caller's GLIBC_TUNABLES back for the commands and workers it
 * starts. Not done when the caller's GLIBC_TUNABLES sets tcache_count itself, nor under valgrind (whose allocator
 * replaces glibc's, and which an exec would leave). If the exec fails, the job runs with glibc's default.
 * The exec costs a second start of the program (loading its ~40 shared libraries: ~5 ms of CPU) and each thread's
 * cache holds ~36 KiB, so it is only done from S_TCACHE_JOBS workers up: below, the caches hold less than 1 MiB. */
#define S_TCACHE_JOBS 32
#define S_TUNABLES_WAS "SLUICE_GLIBC_TUNABLES_WAS" /* "=value", or "-" when GLIBC_TUNABLES was unset */
static void s_restore_tunables(const char *was) {
    if (was[0] == '=')
        setenv("GLIBC_TUNABLES", was + 1, 1);
    else
        unsetenv("GLIBC_TUNABLES");
    unsetenv(S_TUNABLES_WAS);
}

static void s_malloc_setup(char **argv, unsigned jobs) {
    const char *was = getenv(S_TUNABLES_WAS);
    if (was) {
        s_restore_tunables(was);
        return;
    }
    if ((jobs ? jobs : sl_job_default_jobs()) < S_TCACHE_JOBS)
        return;
    const char *preload = getenv("LD_PRELOAD");
    const char *current = getenv("GLIBC_TUNABLES");
    if ((preload && strstr(preload, "vgpreload")) || (current && strstr(current, "glibc.malloc.tcache_count")))
        return;
    const char *was_text = current ? current : "";
    char *value, *saved; /* GLIBC_TUNABLES for the exec, and what S_TUNABLES_WAS keeps of the caller's */
    if (asprintf(&value, "%s%sglibc.malloc.tcache_count=0", was_text, *was_text ? ":" : "") < 0)
        return;
    if (asprintf(&saved, "%s%s", current ? "=" : "-", was_text) < 0) {
        free(value);
        return;
    }
    /* The file itself rather than /proc/self/exe, whose name would become the process's (`ps`, `pgrep sluice`). */
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len > 0)
        self[len] = '\0';
    /* Started through the dynamic loader (`ld-linux-x86-64.so.2 sluice ...`), /proc/self/exe is the loader. */
    const char *base = len > 0 ? strrchr(self, '/') : NULL;
    bool loader = base && strncmp(base + 1, "ld-", 3) == 0;
    if (len > 0 && !loader && setenv(S_TUNABLES_WAS, saved, 1) == 0 && setenv("GLIBC_TUNABLES", value, 1) == 0)
        execv(self, argv);
    s_restore_tunables(saved); /* no exec: glibc's default, and the environment as it was */
    free(value);
    free(saved);
}

int main(int argc, char **argv) {
    cli c = {0};
    if (argc < 2) {
        fputs(s_main_help, stderr);
        return EXIT_USAGE;
    }
    const char *command = argv[1];
    if (strcmp(command, "--version") == 0 || strcmp(command, "version") == 0) {
        printf("sluice %s\n", sl_version());
        return EXIT_OK;
    }
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 || strcmp(command, "help") == 0) {
        if (argc > 2 && strcmp(argv[2], "watch") == 0)
            sl_cli_watch_help(stdout);
        else if (argc > 2 && s_command_bit(argv[2]))
            s_command_help(argv[2]);
        else
            fputs(s_main_help, stdout);
        return EXIT_OK;
    }
    if (strcmp(command, "watch") == 0)
        return sl_cli_watch(argc - 2, argv + 2);
    if (!s_command_bit(command)) {
        fprintf(stderr, "%s: unknown command '%s' (commands: ls, du, cat, cp, sync, map, rm, report, watch; see `%s --help`)\n",
                s_prog, command, s_prog);
        return EXIT_USAGE;
    }
    c.command = command;
    int r = s_parse(&c, argc - 2, argv + 2);
    if (r)
        return r < 0 ? EXIT_USAGE : EXIT_OK;
    if (s_command_bit(command) & C_JOBS)
        s_malloc_setup(argv, c.jobs); /* returns only without an exec (or in the process it made) */
    c.progress = !c.quiet && isatty(STDERR_FILENO);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGALRM);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sl_thread_bind_abort(&s_stop_requests);

    int code;
    if (strcmp(command, "ls") == 0)
        code = s_cmd_list(&c, false);
    else if (strcmp(command, "du") == 0)
        code = s_cmd_list(&c, true);
    else if (strcmp(command, "cat") == 0)
        code = s_cmd_cat(&c);
    else if (strcmp(command, "report") == 0)
        code = s_cmd_report(&c);
    else
        code = s_cmd_job(&c);
    free(c.exec_words);
    return code;
}
