/* libFuzzer target: the reading side of the worker protocol (worker_proto.h), what `map --worker` makes of whatever a
 * worker process writes on its stdout. The first input byte sets the size of each read (1 to 256 bytes), the rest is
 * the stream: answers are read one after the other, as a worker thread reads them, until a violation or the end.
 * Checked for every answer that completes: the body delivered is what the final 'size' says; the raw result members
 * (the text sluice copies into its result line) are exactly the members jansson parsed, each one parsing back to the
 * same value, none missing or extra. */
#include "worker_proto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct s_check {
    json_t *result;
    size_t seen;
    uint64_t delivered;
} s_check;

static int s_deliver(void *ctx, const unsigned char *p, size_t n) {
    (void)p;
    ((s_check *)ctx)->delivered += n;
    return 0;
}

static int s_member(void *ctx, const char *name, size_t name_len, const char *value, size_t value_len) {
    s_check *c = ctx;
    json_t *k = json_loadb(name, name_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    json_t *v = json_loadb(value, value_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!json_is_string(k) || !v)
        abort(); /* a raw token that is not the JSON jansson accepted */
    json_t *want = json_object_getn(c->result, json_string_value(k), json_string_length(k));
    if (!want || !json_equal(want, v))
        abort();
    json_decref(k);
    json_decref(v);
    c->seen++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] + 1;
    data++;
    size--;
    char *line = malloc(SL__WP_LINE_MAX + 1), *final_text = malloc(SL__WP_LINE_MAX + 1);
    unsigned char *buf = malloc(256);
    if (!line || !final_text || !buf)
        abort();
    sl__wp_in in = {.buf = buf, .line = line};
    size_t at = 0;
    for (;;) {
        sl__wp_answer a;
        memset(&a, 0, sizeof(a));
        a.final_text = final_text;
        s_check c = {0};
        int rc = 0;
        while (!a.final && rc == 0) {
            if (in.pos == in.len) {
                if (at == size)
                    break;
                size_t k = size - at < step ? size - at : step;
                memcpy(buf, data + at, k);
                in.pos = 0;
                in.len = k;
                at += k;
            }
            rc = sl__wp_answer_feed(&a, &in, s_deliver, &c);
        }
        if (rc != 0 && rc != 1)
            abort();
        if (c.delivered != a.body)
            abort();
        if (!a.final) {
            if (rc == 1 && a.why[0] == '\0')
                abort(); /* a violation without its reason */
            break;
        }
        if (a.has_body && (uint64_t)json_integer_value(json_object_get(a.final_json, "size")) != a.body)
            abort();
        c.result = json_object_get(a.final_json, "result");
        sl__wp_result_members(a.final_text, a.final_len, s_member, &c);
        if (c.seen != (c.result ? json_object_size(c.result) : 0))
            abort();
        json_decref(a.final_json);
    }
    free(line);
    free(final_text);
    free(buf);
    return 0;
}
