/* A second-language checker of fp4ref's conformance vectors, written from
 * conformance/README.md alone: it reads manifest.json and the suites' safetensors files
 * with its own JSON reader, decodes with its own E2M1 / E8M0 / E4M3 / MXFP4 / NVFP4
 * decoders, and compares bits for the decode suites.
 *
 *     cc -std=c99 -O1 -o check_decode check_decode.c -lm && ./check_decode conformance
 *
 * Prints one line per suite and exits 0 when every case of the decode suites passes.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a small JSON reader --------------------------------------------------------- */

typedef enum { J_NULL, J_BOOL, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT } Kind;

typedef struct Json {
    Kind kind;
    double number;           /* J_NUMBER, J_BOOL (0 or 1) */
    char *string;            /* J_STRING; the key of an object member */
    char *key;
    struct Json **items;     /* J_ARRAY elements, J_OBJECT members (each with .key) */
    size_t count;
} Json;

static const char *at;

static void fail(const char *what) {
    fprintf(stderr, "check_decode: %s\n", what);
    exit(2);
}

static void skip_space(void) {
    while (*at == ' ' || *at == '\n' || *at == '\r' || *at == '\t') at++;
}

static Json *new_json(Kind kind) {
    Json *j = calloc(1, sizeof(Json));
    if (!j) fail("out of memory");
    j->kind = kind;
    return j;
}

static void push(Json *parent, Json *child) {
    parent->items = realloc(parent->items, (parent->count + 1) * sizeof(Json *));
    if (!parent->items) fail("out of memory");
    parent->items[parent->count++] = child;
}

static char *parse_string_raw(void) {
    if (*at != '"') fail("JSON: expected a string");
    at++;
    size_t cap = 16, n = 0;
    char *out = malloc(cap);
    while (*at != '"') {
        if (!*at) fail("JSON: unterminated string");
        char c = *at++;
        if (c == '\\') {
            char e = *at++;
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': {  /* the vectors' names are ASCII; keep code points below 128 */
                unsigned v = 0;
                for (int i = 0; i < 4; i++) {
                    char h = *at++;
                    v = v * 16 + (unsigned)(h <= '9' ? h - '0' : (h | 32) - 'a' + 10);
                }
                c = v < 128 ? (char)v : '?';
                break;
            }
            default: c = e;  /* \" \\ \/ */
            }
        }
        if (n + 2 > cap) out = realloc(out, cap *= 2);
        out[n++] = c;
    }
    at++;
    out[n] = 0;
    return out;
}

static Json *parse_value(void) {
    skip_space();
    Json *j;
    if (*at == '{' || *at == '[') {
        char close = *at == '{' ? '}' : ']';
        j = new_json(*at == '{' ? J_OBJECT : J_ARRAY);
        at++;
        skip_space();
        while (*at != close) {
            char *key = NULL;
            if (j->kind == J_OBJECT) {
                key = parse_string_raw();
                skip_space();
                if (*at++ != ':') fail("JSON: expected ':'");
            }
            Json *child = parse_value();
            child->key = key;
            push(j, child);
            skip_space();
            if (*at == ',') at++, skip_space();
            else if (*at != close) fail("JSON: expected ',' or a closing bracket");
        }
        at++;
    } else if (*at == '"') {
        j = new_json(J_STRING);
        j->string = parse_string_raw();
    } else if (!strncmp(at, "true", 4) || !strncmp(at, "false", 5)) {
        j = new_json(J_BOOL);
        j->number = *at == 't';
        at += *at == 't' ? 4 : 5;
    } else if (!strncmp(at, "null", 4)) {
        j = new_json(J_NULL);
        at += 4;
    } else {
        char *end;
        j = new_json(J_NUMBER);
        j->number = strtod(at, &end);
        if (end == at) fail("JSON: unexpected character");
        at = end;
    }
    return j;
}

static Json *parse_json(const char *text) {
    at = text;
    return parse_value();
}

static Json *get(const Json *object, const char *key) {
    for (size_t i = 0; object && object->kind == J_OBJECT && i < object->count; i++)
        if (!strcmp(object->items[i]->key, key)) return object->items[i];
    return NULL;
}

static int json_equal(const Json *a, const Json *b) {
    if (a->kind != b->kind) return 0;
    if (a->kind == J_STRING) return !strcmp(a->string, b->string);
    return a->number == b->number;  /* numbers, booleans, null */
}

/* ---- files and safetensors -------------------------------------------------------- */

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "check_decode: cannot open %s\n", path); exit(2); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc((size_t)n + 1);
    if (!data || fread(data, 1, (size_t)n, f) != (size_t)n) fail("cannot read a file");
    fclose(f);
    data[n] = 0;
    *size = (size_t)n;
    return data;
}

typedef struct {
    unsigned char *data;  /* the whole file */
    size_t size, start;   /* start: 8 + N, where the data buffer begins */
    Json *header;
} Safetensors;

typedef struct {
    const char *dtype;
    const unsigned char *bytes;
    size_t count;   /* elements (1 for shape []) */
    size_t last;    /* the length of the last axis (1 for shape []) */
} Tensor;

static Safetensors open_safetensors(const char *path) {
    Safetensors s;
    s.data = read_file(path, &s.size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n * 256 + s.data[i];  /* little-endian u64 */
    if (s.size < 8 || n > s.size - 8) fail("safetensors: header length past the end");
    char *text = malloc(n + 1);
    memcpy(text, s.data + 8, n);
    text[n] = 0;
    s.header = parse_json(text);
    s.start = 8 + n;
    return s;
}

static Tensor tensor(const Safetensors *s, const char *name) {
    Json *entry = get(s->header, name);
    if (!entry) { fprintf(stderr, "check_decode: no tensor %s\n", name); exit(2); }
    Json *offsets = get(entry, "data_offsets"), *shape = get(entry, "shape");
    Tensor t;
    t.dtype = get(entry, "dtype")->string;
    size_t begin = (size_t)offsets->items[0]->number, end = (size_t)offsets->items[1]->number;
    if (end < begin || s->start + end > s->size) fail("safetensors: offsets past the end");
    t.bytes = s->data + s->start + begin;
    t.count = 1;
    t.last = 1;
    for (size_t i = 0; i < shape->count; i++) {
        t.last = (size_t)shape->items[i]->number;
        t.count *= t.last;
    }
    return t;
}

static uint32_t u32_at(const unsigned char *p, size_t i) {
    p += 4 * i;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t u16_at(const unsigned char *p, size_t i) {
    p += 2 * i;
    return (uint16_t)(p[0] | p[1] << 8);
}

static float f32_from_bits(uint32_t bits) {
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint32_t bits_of_f32(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    return bits;
}

/* ---- the decoders, as conformance/README.md states them ----------------------------- */

static double e2m1(unsigned code) {  /* sign bit 3, exponent bits 2..1 (bias 1), mantissa 0 */
    unsigned e = (code >> 1) & 3, m = code & 1;
    double magnitude = e == 0 ? 0.5 * m : ldexp(1.0 + 0.5 * m, (int)e - 1);
    return code & 8 ? -magnitude : magnitude;
}

static double e8m0(unsigned byte) {  /* 2^(byte - 127); 0xFF is NaN */
    return byte == 0xFF ? NAN : ldexp(1.0, (int)byte - 127);
}

static double e4m3(unsigned byte) {  /* bias 7, subnormals m * 2^-9, 0x7F/0xFF NaN, no Inf */
    unsigned e = (byte >> 3) & 15, m = byte & 7;
    if (e == 15 && m == 7) return NAN;
    double magnitude = e == 0 ? ldexp((double)m, -9) : ldexp(1.0 + m / 8.0, (int)e - 7);
    return byte & 0x80 ? -magnitude : magnitude;
}

static uint32_t canonical(float f) {  /* every NaN written is 0x7FC00000 */
    return isnan(f) ? 0x7FC00000u : bits_of_f32(f);
}

static uint16_t bfloat16_bits(uint32_t bits) {  /* round to nearest even; NaN 0x7FC0 */
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;
    return (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1)) >> 16);
}

static uint16_t float16_bits(uint32_t bits) {  /* round to nearest even; NaN 0x7E00 */
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    uint32_t magnitude = bits & 0x7FFFFFFFu;
    if (magnitude > 0x7F800000u) return 0x7E00;
    if (magnitude >= 0x477FF000u) return sign | 0x7C00;  /* rounds to 65536 or more: Inf */
    int e = (int)(magnitude >> 23) - 127;
    if (e < -25) return sign;                           /* below half the least subnormal */
    uint32_t significand = (magnitude & 0x7FFFFFu) | 0x800000u;
    int shift = e >= -14 ? 13 : 13 + (-14 - e);         /* bits dropped: normal / subnormal */
    uint32_t kept = significand >> shift, rest = significand & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (kept & 1))) kept++;
    if (e >= -14) return sign | (uint16_t)((((uint32_t)(e + 15)) << 10) + kept - 0x400);
    return sign | (uint16_t)kept;                       /* a carry into 0x400 is the least normal */
}

/* element i of a row of packed codes, in a nibble order, for blocks of block_size */
static unsigned code_at(const unsigned char *row, size_t i, const char *order,
                        size_t block_size) {
    if (!strcmp(order, "split-half")) {
        size_t block = i / block_size, j = i % block_size, half = block_size / 2;
        unsigned char byte = row[block * half + j % half];
        return j < half ? byte & 15 : byte >> 4;
    }
    unsigned char byte = row[i / 2];
    int low = (i % 2 == 0) == (strcmp(order, "high-first") != 0);
    return low ? byte & 15 : byte >> 4;
}

/* ---- running the suites ------------------------------------------------------------- */

static const char *param_string(const Json *params, const char *key, const char *otherwise) {
    Json *value = get(params, key);
    return value ? value->string : otherwise;
}

static int is_ocp(const Json *params, const Json *ocp) {
    /* "ocp": {} allows everything; a parameter absent from the map may take any value */
    for (size_t i = 0; i < params->count; i++) {
        Json *allowed = get(ocp, params->items[i]->key);
        if (!allowed) continue;
        int found = 0;
        for (size_t k = 0; k < allowed->count; k++)
            found |= json_equal(allowed->items[k], params->items[i]);
        if (!found) return 0;
    }
    return 1;
}

/* the bits of result element i, in the dtype of the expected tensor */
static uint32_t result_bits(float value, const char *dtype) {
    uint32_t bits = canonical(value);
    if (!strcmp(dtype, "BF16")) return bfloat16_bits(bits);
    if (!strcmp(dtype, "F16")) return float16_bits(bits);
    return bits;
}

static uint32_t expected_bits(const Tensor *t, size_t i) {
    return strcmp(t->dtype, "F32") ? u16_at(t->bytes, i) : u32_at(t->bytes, i);
}

/* one case; returns the number of mismatching elements (prints the first) */
static size_t run_case(const char *operation, const Json *c, const Safetensors *file) {
    Json *inputs = get(c, "inputs"), *params = get(c, "params");
    Tensor want = tensor(file, get(c, "expected")->items[0]->items[1]->string);
    Tensor first = tensor(file, inputs->items[0]->items[1]->string);
    const char *order = param_string(params, "nibble_order", "low-first");
    size_t bad = 0;
    for (size_t i = 0; i < want.count; i++) {
        float value;
        if (!strcmp(operation, "decode_e2m1")) {
            value = (float)e2m1(first.bytes[i]);
        } else if (!strcmp(operation, "decode_e8m0")) {
            value = (float)e8m0(first.bytes[i]);
        } else if (!strcmp(operation, "decode_e4m3")) {
            value = (float)e4m3(first.bytes[i]);
        } else {
            int mx = !strcmp(operation, "dequantize_mxfp4");
            size_t block = mx ? 32 : 16;
            Tensor scales = tensor(file, inputs->items[1]->items[1]->string);
            size_t k = want.last, r = i / k, e = i % k;  /* blocks [N, K/2], scales [N, K/B] */
            unsigned code = code_at(first.bytes + r * (k / 2), e, order, block);
            unsigned scale = scales.bytes[r * (k / block) + e / block];
            if (mx) {
                value = (float)(e2m1(code) * e8m0(scale));  /* exact in double, rounded once */
            } else {
                Tensor ts = tensor(file, inputs->items[2]->items[1]->string);
                volatile float product = (float)(e2m1(code) * e4m3(scale));  /* exact */
                value = product * f32_from_bits(u32_at(ts.bytes, 0));  /* one float32 multiply */
            }
        }
        uint32_t got = result_bits(value, want.dtype), wanted = expected_bits(&want, i);
        if (got != wanted && bad++ == 0)
            printf("  %s: element %zu: want 0x%X, got 0x%X\n",
                   get(c, "name")->string, i, (unsigned)wanted, (unsigned)got);
    }
    return bad;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "conformance";
    char path[4096];
    size_t size;
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    Json *manifest = parse_json((char *)read_file(path, &size));
    const char *decoders[] = {"decode_e2m1", "decode_e8m0", "decode_e4m3", "dequantize_mxfp4",
                              "dequantize_nvfp4"};
    Json *suites = get(manifest, "suites");
    int failed = 0, suites_run = 0;
    for (size_t s = 0; s < suites->count; s++) {
        Json *suite = suites->items[s];
        const char *operation = get(suite, "operation")->string;
        int known = 0;
        for (size_t d = 0; d < sizeof decoders / sizeof *decoders; d++)
            known |= !strcmp(operation, decoders[d]);
        if (!known) continue;
        snprintf(path, sizeof path, "%s/%s", dir, get(suite, "file")->string);
        Safetensors file = open_safetensors(path);
        Json *cases = get(suite, "cases"), *ocp = get(suite, "ocp");
        size_t passed = 0, ocp_cases = 0;
        for (size_t i = 0; i < cases->count; i++) {
            /* an OCP decoder runs the OCP cases; the others hold other conventions */
            if (!is_ocp(get(cases->items[i], "params"), ocp)) continue;
            ocp_cases++;
            passed += run_case(operation, cases->items[i], &file) == 0;
        }
        printf("%-18s %zu/%zu OCP cases pass (%zu cases in all)\n",
               get(suite, "name")->string, passed, ocp_cases, cases->count);
        failed |= passed != ocp_cases;
        suites_run++;
    }
    if (suites_run != 5) fail("expected the five decode suites in the manifest");
    return failed;
}
