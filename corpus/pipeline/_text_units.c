/* Compiled text units of the corpus pipeline, over the tokens of corpus/pipeline/units.py
 * (words of non-CJK text, single CJK characters):
 * - text_counts: every count the quality filter needs: a pass over the code points, one over
 *   the tokens, and one per n-gram size. Same contract as the pure-Python
 *   `text_counts.python_text_counts`, the readable definition and the oracle in the tests.
 * - shingle_hashes: the MinHash shingles' 32-bit hashes, as `fingerprint.python_shingle_hashes`.
 * - tidy_whitespace: the clean stage's whitespace rules, as `clean.python_tidy_whitespace`.
 * - char_minhash: the MinHash signature of a text's character n-grams, as
 *   `fingerprint.MinHasher.signature_of_hashes(char_shingle_hashes(...))` (numpy), the definition.
 *
 * The character classes are CPython's own (`Py_UNICODE_ISALNUM` is `re`'s \w without '_',
 * `Py_UNICODE_ISDECIMAL` its \d, `Py_UNICODE_ISSPACE` str.split's whitespace,
 * `Py_UNICODE_ISDIGIT` str.isdigit), so the results equal those of the regexes.
 *
 * N-grams are compared exactly: level n gives each n-gram a dense id from the pair (id of the
 * (n-1)-gram at the same position, id of its last token), looked up in a hash table of pairs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SIZES 32

static inline int is_cjk(Py_UCS4 c) {
    /* corpus/pipeline/units.py CJK_CHARS */
    return (c >= 0x3400 && c <= 0x4dbf) || (c >= 0x4e00 && c <= 0x9fff) || (c >= 0xf900 && c <= 0xfaff) ||
           (c >= 0x3040 && c <= 0x30ff) || (c >= 0xac00 && c <= 0xd7af);
}

static inline int is_latin_letter(Py_UCS4 c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= 0xc0 && c <= 0x24f);
}

/* Character classes, as bits (a table answers ASCII). */
enum { SPACE = 1, DECIMAL = 2, ALNUM = 4, DIGIT = 8 };
static unsigned char ascii_classes[128];

static inline unsigned classes_of(Py_UCS4 c) {
    if (c < 128) return ascii_classes[c];
    return (Py_UNICODE_ISSPACE(c) ? SPACE : 0) | (Py_UNICODE_ISDECIMAL(c) ? DECIMAL : 0) |
           (Py_UNICODE_ISALNUM(c) ? ALNUM : 0) | (Py_UNICODE_ISDIGIT(c) ? DIGIT : 0);
}

static inline uint64_t mix(uint64_t h) {
    h ^= h >> 31;
    h *= 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 29);
}

typedef struct {
    Py_ssize_t *start; /* token i: text[start[i]:start[i] + length[i]] */
    int64_t *length;
    uint32_t *ids;      /* the ids of the n-grams starting at each position, current n */
    uint32_t *occurrences; /* by id: how often that n-gram occurs */
    uint64_t *keys;     /* hash table: key + 1 (0 = empty) */
    uint32_t *values;
    uint64_t mask;
} Work;

static void work_free(Work *w) {
    PyMem_Free(w->start);
    PyMem_Free(w->length);
    PyMem_Free(w->ids);
    PyMem_Free(w->occurrences);
    PyMem_Free(w->keys);
    PyMem_Free(w->values);
}

/* The token arrays, for at most `capacity` tokens (the text's length). */
static int work_alloc_tokens(Work *w, Py_ssize_t capacity) {
    memset(w, 0, sizeof(Work));
    w->start = PyMem_Malloc(sizeof(Py_ssize_t) * (capacity + 1));
    w->length = PyMem_Malloc(sizeof(int64_t) * (capacity + 1));
    if (!w->start || !w->length) {
        work_free(w);
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* The n-gram arrays and the hash table, for `count` tokens. */
static int work_alloc_ngrams(Work *w, Py_ssize_t count) {
    size_t slots = 16;
    while (slots < (size_t)count * 2) slots <<= 1;
    w->ids = PyMem_Malloc(sizeof(uint32_t) * (count + 1));
    w->occurrences = PyMem_Malloc(sizeof(uint32_t) * (count + 1));
    w->keys = PyMem_Malloc(sizeof(uint64_t) * slots);
    w->values = PyMem_Malloc(sizeof(uint32_t) * slots);
    w->mask = slots - 1;
    if (!w->ids || !w->occurrences || !w->keys || !w->values) {
        work_free(w);
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int tokens_equal(int kind, const void *data, Py_ssize_t a, Py_ssize_t b, int64_t length) {
    if (kind == PyUnicode_1BYTE_KIND) return memcmp((const Py_UCS1 *)data + a, (const Py_UCS1 *)data + b, length) == 0;
    if (kind == PyUnicode_2BYTE_KIND) return memcmp((const Py_UCS2 *)data + a, (const Py_UCS2 *)data + b, 2 * length) == 0;
    return memcmp((const Py_UCS4 *)data + a, (const Py_UCS4 *)data + b, 4 * length) == 0;
}

/* Level 1: each token's id is that of the first equal token (dense, in order of first sight). */
static uint32_t assign_token_ids(Work *w, Py_ssize_t count, int kind, const void *data) {
    uint32_t distinct = 0;
    uint32_t *first = w->values; /* slot -> token index of the first occurrence */
    memset(w->keys, 0, sizeof(uint64_t) * (w->mask + 1));
    for (Py_ssize_t i = 0; i < count; i++) {
        uint64_t h = 0xcbf29ce484222325ULL;
        for (int64_t k = 0; k < w->length[i]; k++) h = (h ^ PyUnicode_READ(kind, data, w->start[i] + k)) * 0x100000001b3ULL;
        h = mix(h) | 1; /* never 0, the empty mark */
        uint64_t slot = h & w->mask;
        for (;;) {
            if (w->keys[slot] == 0) {
                w->keys[slot] = h;
                first[slot] = (uint32_t)i;
                w->ids[i] = distinct++;
                break;
            }
            uint32_t other = first[slot];
            if (w->keys[slot] == h && w->length[other] == w->length[i] &&
                tokens_equal(kind, data, w->start[other], w->start[i], w->length[i])) {
                w->ids[i] = w->ids[other];
                break;
            }
            slot = (slot + 1) & w->mask;
        }
    }
    return distinct;
}

/* Level n from level n-1: ids[j] <- id of the pair (ids[j], token id at j + n - 1), for the
 * `grams` positions that start an n-gram. `token_ids` holds level 1. */
static uint32_t extend_ids(Work *w, const uint32_t *token_ids, Py_ssize_t grams, int n) {
    uint32_t distinct = 0;
    memset(w->keys, 0, sizeof(uint64_t) * (w->mask + 1));
    for (Py_ssize_t j = 0; j < grams; j++) {
        uint64_t key = (((uint64_t)w->ids[j] << 32) | token_ids[j + n - 1]) + 1;
        uint64_t slot = mix(key) & w->mask;
        for (;;) {
            if (w->keys[slot] == 0) {
                w->keys[slot] = key;
                w->values[slot] = distinct;
                w->ids[j] = distinct++;
                break;
            }
            if (w->keys[slot] == key) {
                w->ids[j] = w->values[slot];
                break;
            }
            slot = (slot + 1) & w->mask;
        }
    }
    return distinct;
}

static int read_sizes(PyObject *sequence, long *sizes, Py_ssize_t *count, const char *what) {
    PyObject *fast = PySequence_Fast(sequence, what);
    if (!fast) return -1;
    *count = PySequence_Fast_GET_SIZE(fast);
    if (*count > MAX_SIZES) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "%s: at most %d sizes", what, MAX_SIZES);
        return -1;
    }
    for (Py_ssize_t i = 0; i < *count; i++) {
        sizes[i] = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        if (sizes[i] == -1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
        if (sizes[i] < 1) {
            Py_DECREF(fast);
            PyErr_Format(PyExc_ValueError, "%s: n-gram sizes must be >= 1", what);
            return -1;
        }
    }
    Py_DECREF(fast);
    return 0;
}

/* The tokens of text[0:size] into start/length (room for `size` tokens); returns how many. */
static Py_ssize_t tokenize(int kind, const void *data, Py_ssize_t size, Py_ssize_t *start, int64_t *length) {
    Py_ssize_t count = 0;
    int in_word = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (is_cjk(c)) {
            start[count] = i;
            length[count++] = 1;
            in_word = 0;
        } else if ((classes_of(c) & ALNUM) || c == '_') {
            if (!in_word) {
                start[count] = i;
                length[count++] = 0;
                in_word = 1;
            }
            length[count - 1]++;
        } else {
            in_word = 0;
        }
    }
    return count;
}

static PyObject *text_counts(PyObject *module, PyObject *args) {
    PyObject *text, *top_arg, *duplicate_arg;
    if (!PyArg_ParseTuple(args, "UOO", &text, &top_arg, &duplicate_arg)) return NULL;
    long top_sizes[MAX_SIZES], duplicate_sizes[MAX_SIZES];
    Py_ssize_t top_count, duplicate_count;
    if (read_sizes(top_arg, top_sizes, &top_count, "top sizes") < 0) return NULL;
    if (read_sizes(duplicate_arg, duplicate_sizes, &duplicate_count, "duplicate sizes") < 0) return NULL;

    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text);
    if (size >= INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "text too long for text_counts");
        return NULL;
    }
    Work w;
    if (work_alloc_tokens(&w, size) < 0) return NULL;

    long long cjk = 0, token_chars = 0, latin_words = 0, latin_word_chars = 0;
    long long non_space = 0, letters = 0, digits = 0, latin_letters = 0;
    Py_ssize_t count = tokenize(kind, data, size, w.start, w.length);
    for (Py_ssize_t t = 0; t < count; t++) {
        token_chars += w.length[t];
        if (is_cjk(PyUnicode_READ(kind, data, w.start[t]))) {
            cjk++;
            continue;
        }
        int all_digits = 1; /* str.isdigit: words that are all digits are not Latin words */
        for (int64_t k = 0; k < w.length[t] && all_digits; k++)
            all_digits = (classes_of(PyUnicode_READ(kind, data, w.start[t] + k)) & DIGIT) != 0;
        if (!all_digits) {
            latin_words++;
            latin_word_chars += w.length[t];
        }
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        unsigned classes = classes_of(c);
        if (!(classes & SPACE)) non_space++;
        if (classes & DECIMAL) digits++;
        else if (classes & ALNUM) letters++; /* re's [^\W\d_] */
        if (is_latin_letter(c)) latin_letters++;
    }

    long long top_chars[MAX_SIZES] = {0}, duplicate_chars[MAX_SIZES] = {0};
    long max_n = 0;
    for (Py_ssize_t k = 0; k < top_count; k++)
        if (top_sizes[k] <= count && top_sizes[k] > max_n) max_n = top_sizes[k];
    for (Py_ssize_t k = 0; k < duplicate_count; k++)
        if (duplicate_sizes[k] <= count && duplicate_sizes[k] > max_n) max_n = duplicate_sizes[k];

    uint32_t *token_ids = NULL;
    if (max_n > 0) {
        if (work_alloc_ngrams(&w, count) < 0) return NULL;
        token_ids = PyMem_Malloc(sizeof(uint32_t) * count);
        if (!token_ids) {
            work_free(&w);
            return PyErr_NoMemory();
        }
    }
    for (long n = 1; n <= max_n; n++) {
        Py_ssize_t grams = count - n + 1;
        uint32_t distinct;
        if (n == 1) {
            distinct = assign_token_ids(&w, count, kind, data);
            memcpy(token_ids, w.ids, sizeof(uint32_t) * count);
        } else {
            distinct = extend_ids(&w, token_ids, grams, (int)n);
        }
        memset(w.occurrences, 0, sizeof(uint32_t) * distinct);
        for (Py_ssize_t j = 0; j < grams; j++) w.occurrences[w.ids[j]]++;
        for (Py_ssize_t k = 0; k < top_count; k++) {
            if (top_sizes[k] != n) continue;
            /* all occurrences of the most frequent n-gram; ties: the one that occurs first */
            uint32_t top = 0;
            Py_ssize_t first = 0;
            for (Py_ssize_t j = 0; j < grams; j++)
                if (w.occurrences[w.ids[j]] > top) {
                    top = w.occurrences[w.ids[j]];
                    first = j;
                }
            if (top >= 2) {
                long long chars = 0;
                for (long t = 0; t < n; t++) chars += w.length[first + t];
                top_chars[k] = (long long)top * chars;
            }
        }
        for (Py_ssize_t k = 0; k < duplicate_count; k++) {
            if (duplicate_sizes[k] != n) continue;
            /* token i is covered when an n-gram seen more than once starts in [i - n + 1, i] */
            long long chars = 0;
            Py_ssize_t covered_until = 0;
            for (Py_ssize_t i = 0; i < count; i++) {
                if (i < grams && w.occurrences[w.ids[i]] > 1) covered_until = i + n;
                if (i < covered_until) chars += w.length[i];
            }
            duplicate_chars[k] = chars;
        }
    }
    PyMem_Free(token_ids);
    work_free(&w);

    PyObject *tops = PyTuple_New(top_count), *duplicates = PyTuple_New(duplicate_count);
    if (!tops || !duplicates) {
        Py_XDECREF(tops);
        Py_XDECREF(duplicates);
        return NULL;
    }
    for (Py_ssize_t k = 0; k < top_count + duplicate_count; k++) {
        PyObject *value = PyLong_FromLongLong(k < top_count ? top_chars[k] : duplicate_chars[k - top_count]);
        if (!value) {
            Py_DECREF(tops);
            Py_DECREF(duplicates);
            return NULL;
        }
        if (k < top_count) PyTuple_SET_ITEM(tops, k, value);
        else PyTuple_SET_ITEM(duplicates, k - top_count, value);
    }
    return Py_BuildValue("(nLLLLLLLLNN)", count, cjk, token_chars, latin_words, latin_word_chars, non_space, letters,
                         digits, latin_letters, tops, duplicates);
}

/* CRC-32 (zlib's: reflected 0xEDB88320, initial and final xor 0xFFFFFFFF) of the UTF-8 bytes. */
static uint32_t crc_table[256];

static inline uint32_t crc_byte(uint32_t crc, unsigned char byte) {
    return crc_table[(crc ^ byte) & 0xff] ^ (crc >> 8);
}

static uint32_t crc32_utf8(int kind, const void *data, Py_ssize_t start, int64_t length) {
    uint32_t crc = 0xFFFFFFFFu;
    for (int64_t k = 0; k < length; k++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, start + k);
        if (c < 0x80) {
            crc = crc_byte(crc, (unsigned char)c);
        } else if (c < 0x800) {
            crc = crc_byte(crc, (unsigned char)(0xC0 | (c >> 6)));
            crc = crc_byte(crc, (unsigned char)(0x80 | (c & 0x3F)));
        } else if (c < 0x10000) {
            crc = crc_byte(crc, (unsigned char)(0xE0 | (c >> 12)));
            crc = crc_byte(crc, (unsigned char)(0x80 | ((c >> 6) & 0x3F)));
            crc = crc_byte(crc, (unsigned char)(0x80 | (c & 0x3F)));
        } else {
            crc = crc_byte(crc, (unsigned char)(0xF0 | (c >> 18)));
            crc = crc_byte(crc, (unsigned char)(0x80 | ((c >> 12) & 0x3F)));
            crc = crc_byte(crc, (unsigned char)(0x80 | ((c >> 6) & 0x3F)));
            crc = crc_byte(crc, (unsigned char)(0x80 | (c & 0x3F)));
        }
    }
    return crc ^ 0xFFFFFFFFu;
}

static int compare_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* shingle_hashes(text, n) -> bytes: the distinct 32-bit hashes of the token n-grams of `text`
 * (one n-gram of all tokens when there are fewer than n), ascending, native-endian uint32. */
static PyObject *shingle_hashes(PyObject *module, PyObject *args) {
    PyObject *text;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "Un", &text, &n)) return NULL;
    if (n < 1) {
        PyErr_SetString(PyExc_ValueError, "shingle n-gram size must be >= 1");
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text);
    Work w;
    if (work_alloc_tokens(&w, size) < 0) return NULL;
    Py_ssize_t count = tokenize(kind, data, size, w.start, w.length);
    if (count == 0) {
        work_free(&w);
        return PyBytes_FromStringAndSize(NULL, 0);
    }
    uint64_t *token_hashes = PyMem_Malloc(sizeof(uint64_t) * count);
    uint32_t *values = PyMem_Malloc(sizeof(uint32_t) * count);
    if (!token_hashes || !values) {
        PyMem_Free(token_hashes);
        PyMem_Free(values);
        work_free(&w);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t t = 0; t < count; t++) token_hashes[t] = crc32_utf8(kind, data, w.start[t], w.length[t]);
    work_free(&w);
    Py_ssize_t m = n < count ? n : count, grams = count - m + 1;
    for (Py_ssize_t j = 0; j < grams; j++) {
        uint64_t g = 0; /* a polynomial over the n-gram's token hashes; uint64 wraps */
        for (Py_ssize_t o = 0; o < m; o++) g = g * 1000003ULL + token_hashes[j + o];
        g = (g ^ (g >> 31)) * 0x9E3779B97F4A7C15ULL;
        values[j] = (uint32_t)(g >> 32);
    }
    PyMem_Free(token_hashes);
    qsort(values, grams, sizeof(uint32_t), compare_u32);
    Py_ssize_t distinct = 0;
    for (Py_ssize_t j = 0; j < grams; j++)
        if (distinct == 0 || values[j] != values[distinct - 1]) values[distinct++] = values[j];
    PyObject *result = PyBytes_FromStringAndSize((const char *)values, distinct * sizeof(uint32_t));
    PyMem_Free(values);
    return result;
}

/* The MinHash of one shingle hash into `values`: datasketch's affine32 scheme after the
 * MurmurHash3 32-bit finaliser (`datasketch.minhash._fmix`), `a*h + b` mod 2^32, minimum kept.
 * Cloned for AVX2 where the compiler can (the permutation loop is 8 lanes wide there). */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__GLIBC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
static void minhash_update(uint32_t *values, const uint32_t *a, const uint32_t *b, Py_ssize_t perms,
                           const uint32_t *hashes, Py_ssize_t count) {
    for (Py_ssize_t j = 0; j < count; j++) {
        uint32_t h = hashes[j];
        h ^= h >> 16;
        h *= 0x85EBCA6Bu;
        h ^= h >> 13;
        h *= 0xC2B2AE35u;
        h ^= h >> 16;
        for (Py_ssize_t p = 0; p < perms; p++) {
            uint32_t v = a[p] * h + b[p];
            values[p] = v < values[p] ? v : values[p];
        }
    }
}

#define MINHASH_BLOCK 1024

/* char_minhash(text, n, a, b) -> bytes | None: the MinHash signature (native-endian uint32, one per
 * permutation; `a` and `b` are the permutations as native uint32 bytes) of the character n-grams
 * of `text` (already lower-cased and whitespace-collapsed: `fingerprint.shingle_text`); one
 * n-gram of the whole text when it is shorter than n; None for an empty text. An n-gram's hash is
 * `fingerprint._polynomial_hashes`': a polynomial over (code point + 1), uint64 wrapping, then
 * mixed and its high 32 bits kept. */
static PyObject *char_minhash(PyObject *module, PyObject *args) {
    PyObject *text;
    Py_ssize_t n;
    Py_buffer a, b;
    if (!PyArg_ParseTuple(args, "Uny*y*", &text, &n, &a, &b)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t perms = a.len / (Py_ssize_t)sizeof(uint32_t);
    if (n < 1 || a.len != b.len || a.len % sizeof(uint32_t) || perms == 0) {
        PyErr_SetString(PyExc_ValueError, "char_minhash: n >= 1 and equal, non-empty uint32 permutations a and b");
        goto done;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text);
    if (size == 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    Py_ssize_t m = n < size ? n : size, grams = size - m + 1;
    uint32_t *values = PyMem_Malloc(sizeof(uint32_t) * perms);
    uint32_t block[MINHASH_BLOCK];
    if (!values) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t p = 0; p < perms; p++) values[p] = UINT32_MAX;
    Py_ssize_t filled = 0;
    for (Py_ssize_t j = 0; j < grams; j++) {
        uint64_t g = 0; /* uint64 wraps, as numpy's does */
        for (Py_ssize_t o = 0; o < m; o++) g = g * 1000003ULL + (uint64_t)PyUnicode_READ(kind, data, j + o) + 1;
        g = (g ^ (g >> 31)) * 0x9E3779B97F4A7C15ULL;
        block[filled++] = (uint32_t)(g >> 32);
        if (filled == MINHASH_BLOCK) {
            minhash_update(values, (const uint32_t *)a.buf, (const uint32_t *)b.buf, perms, block, filled);
            filled = 0;
        }
    }
    minhash_update(values, (const uint32_t *)a.buf, (const uint32_t *)b.buf, perms, block, filled);
    result = PyBytes_FromStringAndSize((const char *)values, perms * sizeof(uint32_t));
    PyMem_Free(values);
done:
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    return result;
}

static inline int is_tidy_space(Py_UCS4 c) { return c == ' ' || c == '\t' || c == 0xa0 || c == 0x3000; }

/* tidy_whitespace(text) -> str, as `clean.python_tidy_whitespace` before its strip(): runs of
 * [ \t\u00a0\u3000] become one space, a space next to a newline goes, runs of three or more
 * newlines become two. One pass: a space run is held back until the next other character, so
 * it is dropped when a newline comes first or came just before. */
static PyObject *tidy_whitespace(PyObject *module, PyObject *args) {
    PyObject *text;
    if (!PyArg_ParseTuple(args, "U", &text)) return NULL;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text);
    Py_UCS4 *out = PyMem_Malloc(sizeof(Py_UCS4) * (size + 1));
    if (!out) return PyErr_NoMemory();
    Py_ssize_t length = 0, newlines = 0;
    int space = 0;
    for (Py_ssize_t i = 0; i <= size; i++) {
        Py_UCS4 c = i < size ? PyUnicode_READ(kind, data, i) : 0;
        if (i < size && is_tidy_space(c)) {
            space = 1;
            continue;
        }
        if (i < size && c == '\n') {
            space = 0;
            newlines++;
            continue;
        }
        if (newlines) {
            for (Py_ssize_t k = 0; k < newlines && k < 2; k++) out[length++] = '\n';
            newlines = 0;
            space = 0;
        } else if (space) {
            out[length++] = ' ';
            space = 0;
        }
        if (i < size) out[length++] = c;
    }
    PyObject *result = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, out, length);
    PyMem_Free(out);
    return result;
}

static PyMethodDef methods[] = {
    {"text_counts", text_counts, METH_VARARGS,
     "text_counts(text, top_sizes, duplicate_sizes) -> the fields of corpus.pipeline.text_counts.TextCounts"},
    {"tidy_whitespace", tidy_whitespace, METH_VARARGS, "tidy_whitespace(text) -> str (see clean.py)"},
    {"shingle_hashes", shingle_hashes, METH_VARARGS,
     "shingle_hashes(text, n) -> bytes: distinct 32-bit n-gram hashes, ascending (see fingerprint.py)"},
    {"char_minhash", char_minhash, METH_VARARGS,
     "char_minhash(text, n, a, b) -> bytes | None: MinHash signature of the character n-grams (see fingerprint.py)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_text_units", NULL, -1, methods};

PyMODINIT_FUNC PyInit__text_units(void) {
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t crc = b;
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
        crc_table[b] = crc;
    }
    for (Py_UCS4 c = 0; c < 128; c++)
        ascii_classes[c] = (Py_UNICODE_ISSPACE(c) ? SPACE : 0) | (Py_UNICODE_ISDECIMAL(c) ? DECIMAL : 0) |
                           (Py_UNICODE_ISALNUM(c) ? ALNUM : 0) | (Py_UNICODE_ISDIGIT(c) ? DIGIT : 0);
    return PyModule_Create(&module);
}
