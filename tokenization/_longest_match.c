/* Compiled core of tokenization/longest_match.py: greedy longest-match segmentation, and the
 * tokenizer's whole `encode` (Encoder, below).
 *
 * A character trie over the plain-text tokens. The root's children for code points below
 * ROOT_SPAN sit in a direct table; every other edge is a slot in one open-addressing hash table
 * keyed by (node, code point). An edge carries what the walk needs, so a step touches one
 * place in memory: the child (-1 when the child has no children: the walk stops there without
 * another probe) and the id of the token that ends at the child (-1 if none). Walking forward
 * from a position and keeping the last token seen gives the longest match. On short texts the
 * time goes to cache misses in these tables (a Chinese character is usually a childless token:
 * one look in the root table).
 * Same contract as the pure-Python engine: segment(text) -> (ids, unknown), where ids holds
 * -1 for each unknown span and unknown lists (index in ids, span text).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ROOT_SPAN 0x10000

typedef struct {
    uint64_t key; /* ((node << 21) | code point) + 1; 0 = empty slot */
    int32_t child; /* -1: the child has no children */
    int32_t id;    /* token ending at the child, -1: none */
} Slot;

typedef struct {
    int32_t child;
    int32_t id;
} Edge;

typedef struct {
    PyObject_HEAD
    Slot *slots;
    uint64_t mask;
    Edge *root; /* the root's edges for code points below ROOT_SPAN */
    uint64_t *filter; /* a blocked Bloom filter over the slots' keys (two bits in one word) */
    uint64_t filter_mask;
} Trie;

static const Edge NO_EDGE = {-1, -1};

static inline uint64_t slot_of(uint64_t key, uint64_t mask) {
    return (key * 0x9E3779B97F4A7C15ULL >> 17) & mask;
}

/* Most probes in running text find no edge (two characters that start no token). The slot
 * table is megabytes, so such a probe is a cache miss; the filter is ~16 bits an edge, small
 * enough to stay cached, and answers most of them (false positives ~2%: then the slot table). */
static inline uint64_t filter_bits(uint64_t key) {
    uint64_t h = key * 0xD6E8FEB86659FD93ULL;
    return (1ULL << (h >> 58)) | (1ULL << ((h >> 52) & 63));
}

static inline uint64_t filter_word(uint64_t key, uint64_t mask) {
    return ((key * 0xD6E8FEB86659FD93ULL) >> 20) & mask;
}

static inline int filter_may_have(const Trie *t, int32_t node, Py_UCS4 cp) {
    uint64_t key = (((uint64_t)node << 21) | cp) + 1;
    uint64_t bits = filter_bits(key);
    return (t->filter[filter_word(key, t->filter_mask)] & bits) == bits;
}

/* The edge from node by cp, or NULL. */
static inline const Slot *slot_find(const Slot *slots, uint64_t mask, int32_t node, Py_UCS4 cp) {
    uint64_t key = (((uint64_t)node << 21) | cp) + 1;
    uint64_t i = slot_of(key, mask);
    for (;;) {
        const Slot *s = &slots[i];
        if (s->key == key) return s;
        if (s->key == 0) return NULL;
        i = (i + 1) & mask;
    }
}

static inline Edge edge_find(const Trie *t, int32_t node, Py_UCS4 cp) {
    if (node == 0 && cp < ROOT_SPAN) return t->root[cp];
    const Slot *s = slot_find(t->slots, t->mask, node, cp);
    if (!s) return NO_EDGE;
    Edge e = {s->child, s->id};
    return e;
}

/* The longest token starting at data[p] within [p, end): its id, with its length in *len;
 * -1 when none starts there. kind/data as for PyUnicode_READ (a constant kind specialises). */
static inline int32_t longest_at(const Trie *t, int kind, const void *data, Py_ssize_t p,
                                 Py_ssize_t end, Py_ssize_t *len) {
    Py_UCS4 c = PyUnicode_READ(kind, data, p);
    Edge e;
    if (c < ROOT_SPAN) {
        e = t->root[c];
    } else {
        const Slot *s = slot_find(t->slots, t->mask, 0, c);
        if (!s) return -1;
        e.child = s->child;
        e.id = s->id;
    }
    int32_t best = e.id;
    Py_ssize_t best_len = 1;
    int32_t node = e.child;
    for (Py_ssize_t q = p + 1; node >= 0 && q < end; q++) {
        Py_UCS4 cq = PyUnicode_READ(kind, data, q);
        if (!filter_may_have(t, node, cq)) break;
        const Slot *s = slot_find(t->slots, t->mask, node, cq);
        if (!s) break;
        if (s->id >= 0) {
            best = s->id;
            best_len = q - p + 1;
        }
        node = s->child;
    }
    *len = best_len;
    return best;
}

static void Trie_dealloc(Trie *self) {
    free(self->filter);
    free(self->root);
    free(self->slots);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Trie(pieces: dict[str, int]) */
static int Trie_init(Trie *self, PyObject *args, PyObject *kwds) {
    PyObject *pieces;
    if (!PyArg_ParseTuple(args, "O!", &PyDict_Type, &pieces)) return -1;
    Py_ssize_t total = 1, pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(pieces, &pos, &key, &value)) {
        if (!PyUnicode_Check(key) || !PyLong_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "pieces must map str to int");
            return -1;
        }
        Py_ssize_t len = PyUnicode_GET_LENGTH(key);
        if (len == 0) {
            PyErr_SetString(PyExc_ValueError, "empty token");
            return -1;
        }
        total += len;
    }
    if (total > (1 << 30)) {
        PyErr_SetString(PyExc_ValueError, "token set too large");
        return -1;
    }
    uint64_t cap = 1024;
    while (cap < (uint64_t)total * 2) cap <<= 1;
    free(self->filter); /* set last: until then the trie counts as not initialised */
    self->filter = NULL;
    free(self->slots);
    free(self->root);
    self->root = malloc(ROOT_SPAN * sizeof(Edge));
    self->slots = calloc(cap, sizeof(Slot));
    /* While building: per node, the token ending there and whether it has children. */
    int32_t *node_id = malloc((size_t)total * sizeof(int32_t));
    char *has_child = calloc((size_t)total, 1);
    if (!self->slots || !self->root || !node_id || !has_child) {
        free(node_id);
        free(has_child);
        PyErr_NoMemory();
        return -1;
    }
    for (int32_t c = 0; c < ROOT_SPAN; c++) self->root[c] = NO_EDGE;
    self->mask = cap - 1;
    int32_t n_nodes = 1;
    node_id[0] = -1;
    pos = 0;
    while (PyDict_Next(pieces, &pos, &key, &value)) {
        long id = PyLong_AsLong(value);
        if (id < 0 || id > INT32_MAX) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "token id %ld out of range", id);
            free(node_id);
            free(has_child);
            return -1;
        }
        int kind = PyUnicode_KIND(key);
        const void *data = PyUnicode_DATA(key);
        Py_ssize_t len = PyUnicode_GET_LENGTH(key);
        int32_t node = 0;
        for (Py_ssize_t j = 0; j < len; j++) {
            Py_UCS4 cp = PyUnicode_READ(kind, data, j);
            int32_t child = edge_find(self, node, cp).child;
            if (child < 0) {
                child = n_nodes++;
                node_id[child] = -1;
                has_child[node] = 1;
                if (node == 0 && cp < ROOT_SPAN) {
                    self->root[cp].child = child;
                } else {
                    uint64_t k = (((uint64_t)node << 21) | cp) + 1;
                    uint64_t i = slot_of(k, self->mask);
                    while (self->slots[i].key != 0) i = (i + 1) & self->mask;
                    self->slots[i].key = k;
                    self->slots[i].child = child;
                }
            }
            node = child;
        }
        node_id[node] = (int32_t)id;
    }
    /* Now that the trie is complete: each edge gets its child's token, and childless children
     * become -1 so that walks stop there. */
    for (int32_t c = 0; c < ROOT_SPAN; c++) {
        Edge *e = &self->root[c];
        if (e->child >= 0) {
            e->id = node_id[e->child];
            if (!has_child[e->child]) e->child = -1;
        }
    }
    /* The table was sized for every character of every token; most first characters went to
     * the root table, so move the edges into one sized for them (load below 1/2): a smaller
     * table is a warmer one. */
    uint64_t n_edges = 0;
    for (uint64_t i = 0; i <= self->mask; i++) n_edges += self->slots[i].key != 0;
    uint64_t cap2 = 1024;
    while (cap2 < n_edges * 2) cap2 <<= 1;
    Slot *slots = calloc(cap2, sizeof(Slot));
    if (!slots) {
        free(node_id);
        free(has_child);
        PyErr_NoMemory();
        return -1;
    }
    for (uint64_t i = 0; i <= self->mask; i++) {
        Slot s = self->slots[i];
        if (!s.key) continue;
        s.id = node_id[s.child];
        if (!has_child[s.child]) s.child = -1;
        uint64_t j = slot_of(s.key, cap2 - 1);
        while (slots[j].key != 0) j = (j + 1) & (cap2 - 1);
        slots[j] = s;
    }
    free(self->slots);
    self->slots = slots;
    self->mask = cap2 - 1;
    uint64_t words = 64;
    while (words * 64 < n_edges * 16) words <<= 1;
    free(self->filter);
    self->filter = calloc(words, sizeof(uint64_t));
    if (!self->filter) {
        free(node_id);
        free(has_child);
        PyErr_NoMemory();
        return -1;
    }
    self->filter_mask = words - 1;
    for (uint64_t i = 0; i <= self->mask; i++) {
        uint64_t k = slots[i].key;
        if (k) self->filter[filter_word(k, self->filter_mask)] |= filter_bits(k);
    }
    free(node_id);
    free(has_child);
    return 0;
}

static int flush_unknown(PyObject *ids, PyObject *unknown, PyObject *text, Py_ssize_t start,
                         Py_ssize_t end) {
    PyObject *span = PyUnicode_Substring(text, start, end);
    if (!span) return -1;
    PyObject *item = Py_BuildValue("(nN)", PyList_GET_SIZE(ids), span);
    if (!item) return -1;
    int rc = PyList_Append(unknown, item);
    Py_DECREF(item);
    if (rc < 0) return -1;
    PyObject *minus_one = PyLong_FromLong(-1);
    rc = PyList_Append(ids, minus_one);
    Py_DECREF(minus_one);
    return rc;
}

static int check_ready(Trie *self, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "text must be str, not %s", Py_TYPE(text)->tp_name);
        return -1;
    }
    if (!self->filter) {
        PyErr_SetString(PyExc_RuntimeError, "Trie was not initialised");
        return -1;
    }
    return 0;
}

static PyObject *Trie_segment(Trie *self, PyObject *text) {
    if (check_ready(self, text) < 0) return NULL;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    PyObject *ids = PyList_New(0);
    PyObject *unknown = PyList_New(0);
    if (!ids || !unknown) goto fail;
    Py_ssize_t p = 0, unk_start = -1;
    while (p < n) {
        Py_ssize_t len;
        int32_t best = longest_at(self, kind, data, p, n, &len);
        if (best >= 0) {
            if (unk_start >= 0) {
                if (flush_unknown(ids, unknown, text, unk_start, p) < 0) goto fail;
                unk_start = -1;
            }
            PyObject *id = PyLong_FromLong(best);
            if (!id) goto fail;
            int rc = PyList_Append(ids, id);
            Py_DECREF(id);
            if (rc < 0) goto fail;
            p += len;
        } else {
            if (unk_start < 0) unk_start = p;
            p++;
        }
    }
    if (unk_start >= 0 && flush_unknown(ids, unknown, text, unk_start, n) < 0) goto fail;
    return Py_BuildValue("(NN)", ids, unknown);
fail:
    Py_XDECREF(ids);
    Py_XDECREF(unknown);
    return NULL;
}

/* plain_ids(text) -> list | None: the ids when text has no `<` and no unknown character, else
 * None so the caller takes the general path. */
static PyObject *Trie_plain_ids(Trie *self, PyObject *text) {
    if (check_ready(self, text) < 0) return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    Py_ssize_t lt = PyUnicode_FindChar(text, '<', 0, n, 1);
    if (lt == -2) return NULL;
    if (lt >= 0) Py_RETURN_NONE;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    PyObject *ids = PyList_New(0);
    if (!ids) return NULL;
    Py_ssize_t p = 0;
    while (p < n) {
        Py_ssize_t len;
        int32_t best = longest_at(self, kind, data, p, n, &len);
        if (best < 0) {
            Py_DECREF(ids);
            Py_RETURN_NONE;
        }
        PyObject *id = PyLong_FromLong(best);
        if (!id || PyList_Append(ids, id) < 0) {
            Py_XDECREF(id);
            Py_DECREF(ids);
            return NULL;
        }
        Py_DECREF(id);
        p += len;
    }
    return ids;
}

static PyMethodDef Trie_methods[] = {
    {"plain_ids", (PyCFunction)Trie_plain_ids, METH_O,
     "plain_ids(text) -> list | None: ids if text has no `<` and no unknown span, else None."},
    {"segment", (PyCFunction)Trie_segment, METH_O,
     "segment(text) -> (ids, unknown): greedy longest match; -1 in ids for unknown spans."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TrieType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tokenization._longest_match.Trie",
    .tp_basicsize = sizeof(Trie),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Trie(pieces: dict[str, int]): longest-match segmenter over the given tokens.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Trie_init,
    .tp_dealloc = (destructor)Trie_dealloc,
    .tp_methods = Trie_methods,
};

/* ---------------------------------------------------------------------------------------------
 * Encoder: the whole of CPMBeeTokenizer.encode in one call (tokenizer.py binds it as `encode`
 * for the compiled engine). Short texts (one key or value of a sample, ~9 chars) are the common
 * case in training, and there the cost of encode was Python's per-call work, not the matching.
 *
 * Same rules as the Python path in tokenizer.py: `<<` is a literal `<`; `<` + any character but
 * `<` + anything but `<>` + `>` is a special token (looked up in the full encoder; missing ones
 * go to the ext table); any other `<` raises the tokenizer's error class with the same message
 * and position. Plain parts (with `<<` already turned into `<`) are segmented by the trie; each
 * unknown span gets an ext id. Ext ids count up from vocab_size after the distinct values of
 * past_table, which is copied, never modified.
 * ------------------------------------------------------------------------------------------- */

#define N_EXT_CACHED 16

typedef struct {
    PyObject_HEAD
    Trie *trie;
    PyObject *encoder;    /* dict: token -> id, specials included */
    PyObject *error_cls;  /* called as error_cls(message, pos) */
    Py_ssize_t vocab_size;
    PyObject **id_objs;   /* id -> the encoder's int object (NULL where no token has the id) */
    Py_ssize_t n_id_objs;
    PyObject *ext_ids[N_EXT_CACHED]; /* vocab_size + k: the first ext ids of every text */
} Encoder;

static void Encoder_dealloc(Encoder *self) {
    if (self->id_objs) {
        for (Py_ssize_t i = 0; i < self->n_id_objs; i++) Py_XDECREF(self->id_objs[i]);
        free(self->id_objs);
    }
    for (int k = 0; k < N_EXT_CACHED; k++) Py_XDECREF(self->ext_ids[k]);
    Py_XDECREF(self->trie);
    Py_XDECREF(self->encoder);
    Py_XDECREF(self->error_cls);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Encoder(trie: Trie, encoder: dict[str, int], error_cls) */
static int Encoder_init(Encoder *self, PyObject *args, PyObject *kwds) {
    PyObject *trie, *encoder, *error_cls;
    if (!PyArg_ParseTuple(args, "O!O!O", &TrieType, &trie, &PyDict_Type, &encoder, &error_cls))
        return -1;
    if (!((Trie *)trie)->filter) {
        PyErr_SetString(PyExc_RuntimeError, "Trie was not initialised");
        return -1;
    }
    Py_ssize_t pos = 0, max_id = -1;
    PyObject *key, *value;
    while (PyDict_Next(encoder, &pos, &key, &value)) {
        if (!PyUnicode_Check(key) || !PyLong_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "encoder must map str to int");
            return -1;
        }
        Py_ssize_t id = PyLong_AsSsize_t(value);
        if (id < 0 || id > INT32_MAX) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "token id %zd out of range", id);
            return -1;
        }
        if (id > max_id) max_id = id;
    }
    PyObject **id_objs = calloc((size_t)(max_id + 1) + 1, sizeof(PyObject *));
    if (!id_objs) {
        PyErr_NoMemory();
        return -1;
    }
    pos = 0;
    while (PyDict_Next(encoder, &pos, &key, &value)) {
        Py_ssize_t id = PyLong_AsSsize_t(value);
        if (!id_objs[id]) {
            Py_INCREF(value);
            id_objs[id] = value;
        }
    }
    if (self->id_objs) {
        for (Py_ssize_t i = 0; i < self->n_id_objs; i++) Py_XDECREF(self->id_objs[i]);
        free(self->id_objs);
    }
    self->id_objs = id_objs;
    self->n_id_objs = max_id + 1;
    Py_INCREF(trie);
    Py_XSETREF(self->trie, (Trie *)trie);
    Py_INCREF(encoder);
    Py_XSETREF(self->encoder, encoder);
    Py_INCREF(error_cls);
    Py_XSETREF(self->error_cls, error_cls);
    self->vocab_size = PyDict_GET_SIZE(encoder);
    for (int k = 0; k < N_EXT_CACHED; k++) {
        PyObject *id = PyLong_FromSsize_t(self->vocab_size + k);
        if (!id) return -1;
        Py_XSETREF(self->ext_ids[k], id);
    }
    return 0;
}

/* A growable array with room on the stack for short texts. */
#define STACK_ITEMS 64
typedef struct {
    Py_ssize_t index;   /* where in ids */
    Py_ssize_t start;   /* unknown span: buf[start:end]; special: unused */
    Py_ssize_t end;
    PyObject *token;    /* owned: the special token's text, or NULL for an unknown span */
    PyObject *id_obj;   /* owned: its ext id, once assigned */
} Pending;

static int grow(void **data, Py_ssize_t *cap, Py_ssize_t need, size_t item, void *stack) {
    if (need <= *cap) return 0;
    Py_ssize_t cap2 = *cap * 2 > need ? *cap * 2 : need;
    void *p;
    if (*data == stack) {
        p = malloc((size_t)cap2 * item);
        if (p) memcpy(p, *data, (size_t)*cap * item);
    } else {
        p = realloc(*data, (size_t)cap2 * item);
    }
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    *data = p;
    *cap = cap2;
    return 0;
}

static void raise_tokenize_error(Encoder *self, Py_ssize_t pos, const char *fmt, Py_ssize_t a,
                                 Py_ssize_t b) {
    PyObject *msg = PyUnicode_FromFormat(fmt, a, b);
    if (!msg) return;
    PyObject *exc = PyObject_CallFunction(self->error_cls, "(Nn)", msg, pos);
    if (!exc) return;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
}

typedef struct {
    int64_t *ids;
    Py_ssize_t n_ids, cap_ids;
    Pending *pend;
    Py_ssize_t n_pend, cap_pend;
    int64_t ids_stack[STACK_ITEMS];
    Pending pend_stack[STACK_ITEMS];
} Out;

static inline int out_id(Out *o, int64_t id) {
    if (o->n_ids == o->cap_ids &&
        grow((void **)&o->ids, &o->cap_ids, o->n_ids + 1, sizeof(int64_t), o->ids_stack) < 0)
        return -1;
    o->ids[o->n_ids++] = id;
    return 0;
}

static int out_pending(Out *o, Py_ssize_t start, Py_ssize_t end, PyObject *token) {
    if (o->n_pend == o->cap_pend &&
        grow((void **)&o->pend, &o->cap_pend, o->n_pend + 1, sizeof(Pending), o->pend_stack) < 0) {
        Py_XDECREF(token);
        return -1;
    }
    Pending *p = &o->pend[o->n_pend++];
    p->index = o->n_ids;
    p->start = start;
    p->end = end;
    p->token = token;
    p->id_obj = NULL;
    return out_id(o, -1);
}

/* Greedy longest match over buf[a:b) (one plain part). */
static int segment_part(const Trie *t, const Py_UCS4 *buf, Py_ssize_t a, Py_ssize_t b, Out *o) {
    Py_ssize_t p = a, unk_start = -1;
    while (p < b) {
        Py_ssize_t len;
        int32_t best = longest_at(t, PyUnicode_4BYTE_KIND, buf, p, b, &len);
        if (best >= 0) {
            if (unk_start >= 0) {
                if (out_pending(o, unk_start, p, NULL) < 0) return -1;
                unk_start = -1;
            }
            if (out_id(o, best) < 0) return -1;
            p += len;
        } else {
            if (unk_start < 0) unk_start = p;
            p++;
        }
    }
    if (unk_start >= 0 && out_pending(o, unk_start, b, NULL) < 0) return -1;
    return 0;
}

/* Text for a pending entry (new reference). */
static PyObject *pending_text(const Pending *p, const Py_UCS4 *buf) {
    if (p->token) {
        Py_INCREF(p->token);
        return p->token;
    }
    return PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, buf + p->start, p->end - p->start);
}

/* A new dict with past_table's items, as dict(past_table) makes it; {} for a falsy one. */
static PyObject *copy_past(PyObject *past) {
    if (past == NULL) return PyDict_New();
    if (PyDict_CheckExact(past)) {
        return PyDict_GET_SIZE(past) ? PyDict_Copy(past) : PyDict_New();
    }
    int truth = PyObject_IsTrue(past);
    if (truth < 0) return NULL;
    if (!truth) return PyDict_New();
    return PyObject_CallOneArg((PyObject *)&PyDict_Type, past);
}

/* A cached int for ext id vocab_size + k. New reference. */
static PyObject *ext_id(Encoder *self, Py_ssize_t k) {
    if (k < N_EXT_CACHED) {
        Py_INCREF(self->ext_ids[k]);
        return self->ext_ids[k];
    }
    return PyLong_FromSsize_t(self->vocab_size + k);
}

/* Give each pending entry its ext id (pending[i].id_obj), extending ext, the copy of
 * past_table, as the Python path does with a reverse table {text: id}. Without a past table
 * and with few new entries (a short text) a linear search replaces that dict. */
#define LINEAR_MAX 8
static int assign_ext_ids(Encoder *self, Out *o, const Py_UCS4 *buf, PyObject *ext) {
    PyObject *rev = NULL;
    PyObject *seen_text[LINEAR_MAX], *seen_id[LINEAR_MAX]; /* borrowed: ext holds them */
    Py_ssize_t n_seen = 0, count = 0;
    if (PyDict_GET_SIZE(ext)) {
        /* {v: k for k, v in past_table.items()} */
        rev = PyDict_New();
        if (!rev) return -1;
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        while (PyDict_Next(ext, &pos, &k, &v)) {
            if (PyDict_SetItem(rev, v, k) < 0) goto fail;
        }
        /* len(rev), not len(ext): equal unless past_table repeats a value, where this still
         * matches the reference's numbering. */
        count = PyDict_GET_SIZE(rev);
    }
    for (Py_ssize_t i = 0; i < o->n_pend; i++) {
        PyObject *token = pending_text(&o->pend[i], buf);
        if (!token) goto fail;
        PyObject *idx = NULL;
        if (rev) {
            idx = PyDict_GetItemWithError(rev, token);
            if (idx) {
                Py_INCREF(idx);
            } else if (PyErr_Occurred()) {
                Py_DECREF(token);
                goto fail;
            }
        } else {
            for (Py_ssize_t k = 0; k < n_seen; k++) {
                if (PyUnicode_Compare(seen_text[k], token) == 0) {
                    idx = seen_id[k];
                    Py_INCREF(idx);
                    break;
                }
            }
        }
        if (!idx) {
            idx = ext_id(self, count);
            count++;
            if (!idx || PyDict_SetItem(ext, idx, token) < 0) {
                Py_XDECREF(idx);
                Py_DECREF(token);
                goto fail;
            }
            if (!rev && n_seen == LINEAR_MAX) {
                rev = PyDict_New();
                for (Py_ssize_t k = 0; rev && k < n_seen; k++) {
                    if (PyDict_SetItem(rev, seen_text[k], seen_id[k]) < 0) Py_CLEAR(rev);
                }
                if (!rev) {
                    Py_DECREF(idx);
                    Py_DECREF(token);
                    goto fail;
                }
            }
            if (rev) {
                if (PyDict_SetItem(rev, token, idx) < 0) {
                    Py_DECREF(idx);
                    Py_DECREF(token);
                    goto fail;
                }
            } else {
                seen_text[n_seen] = token;
                seen_id[n_seen] = idx;
                n_seen++;
            }
        }
        Py_DECREF(token);
        o->pend[i].id_obj = idx;
    }
    Py_XDECREF(rev);
    return 0;
fail:
    Py_XDECREF(rev);
    return -1;
}

static PyObject *Encoder_encode(Encoder *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
    PyObject *text = NULL, *past = NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 2 || nargs + nkw > 2 || nargs + nkw < 1) {
        PyErr_SetString(PyExc_TypeError, "encode(text, past_table={}) takes 1 or 2 arguments");
        return NULL;
    }
    if (nargs >= 1) text = args[0];
    if (nargs == 2) past = args[1];
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        PyObject **slot = NULL;
        if (PyUnicode_CompareWithASCIIString(name, "text") == 0) slot = &text;
        else if (PyUnicode_CompareWithASCIIString(name, "past_table") == 0) slot = &past;
        if (!slot || *slot) {
            PyErr_Format(PyExc_TypeError, "encode() got an unexpected or repeated argument %R", name);
            return NULL;
        }
        *slot = args[nargs + i];
    }
    if (!text) {
        PyErr_SetString(PyExc_TypeError, "encode() missing required argument 'text'");
        return NULL;
    }
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "text must be str, not %s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    const Trie *t = self->trie;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);

    Py_UCS4 buf_stack[STACK_ITEMS * 4];
    Py_UCS4 *buf = buf_stack;
    Out o;
    o.ids = o.ids_stack;
    o.cap_ids = STACK_ITEMS;
    o.n_ids = 0;
    o.pend = o.pend_stack;
    o.cap_pend = STACK_ITEMS;
    o.n_pend = 0;
    PyObject *result = NULL, *list = NULL, *ext = NULL;

    if (n > STACK_ITEMS * 4) {
        buf = malloc((size_t)n * sizeof(Py_UCS4));
        if (!buf) {
            PyErr_NoMemory();
            return NULL;
        }
    }
    /* One pass: plain characters go to buf (`<<` as `<`); each special token ends the plain
     * part before it. m: length of buf; part: where the current plain part starts in buf. */
    Py_ssize_t m = 0, part = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c != '<') {
            buf[m++] = c;
            continue;
        }
        if (i + 1 == n) {
            raise_tokenize_error(self, i,
                                 "unexpected end of text after `<` at pos %zd (write `<<` for a literal `<`)",
                                 i, 0);
            goto done;
        }
        if (PyUnicode_READ(kind, data, i + 1) == '<') {
            buf[m++] = '<';
            i++;
            continue;
        }
        Py_ssize_t j = i + 2;
        for (; j < n; j++) {
            Py_UCS4 d = PyUnicode_READ(kind, data, j);
            if (d == '>') break;
            if (d == '<') {
                raise_tokenize_error(self, j,
                                     "invalid special token at pos %zd: `<` inside the special token opened at pos %zd",
                                     j, i);
                goto done;
            }
        }
        if (j == n) {
            raise_tokenize_error(self, i,
                                 "unexpected end of text: special token opened at pos %zd is never closed by `>`",
                                 i, 0);
            goto done;
        }
        if (segment_part(t, buf, part, m, &o) < 0) goto done;
        part = m;
        PyObject *special;
        if (i == 0 && j == n - 1) {
            Py_INCREF(text);
            special = text;
        } else {
            special = PyUnicode_Substring(text, i, j + 1);
            if (!special) goto done;
        }
        PyObject *id = PyDict_GetItemWithError(self->encoder, special);
        if (id) {
            Py_DECREF(special);
            if (out_id(&o, PyLong_AsLongLong(id)) < 0) goto done;
        } else if (PyErr_Occurred()) {
            Py_DECREF(special);
            goto done;
        } else if (out_pending(&o, 0, 0, special) < 0) {
            goto done;
        }
        i = j;
    }
    if (segment_part(t, buf, part, m, &o) < 0) goto done;

    ext = copy_past(past);
    if (!ext) goto done;
    if (o.n_pend) {
        if (assign_ext_ids(self, &o, buf, ext) < 0) goto done;
    }
    list = PyList_New(o.n_ids);
    if (!list) goto done;
    for (Py_ssize_t k = 0; k < o.n_ids; k++) {
        int64_t id = o.ids[k];
        if (id < 0) continue; /* an ext id, set below */
        PyObject *obj = id < self->n_id_objs ? self->id_objs[id] : NULL;
        if (obj) {
            Py_INCREF(obj);
        } else {
            obj = PyLong_FromLongLong(id);
            if (!obj) goto done;
        }
        PyList_SET_ITEM(list, k, obj);
    }
    for (Py_ssize_t k = 0; k < o.n_pend; k++) {
        PyList_SET_ITEM(list, o.pend[k].index, o.pend[k].id_obj);
        o.pend[k].id_obj = NULL;
    }
    result = PyTuple_New(2);
    if (!result) goto done;
    PyTuple_SET_ITEM(result, 0, list);
    PyTuple_SET_ITEM(result, 1, ext);
    list = ext = NULL;
done:
    for (Py_ssize_t k = 0; k < o.n_pend; k++) {
        Py_XDECREF(o.pend[k].token);
        Py_XDECREF(o.pend[k].id_obj);
    }
    Py_XDECREF(list);
    Py_XDECREF(ext);
    if (o.ids != o.ids_stack) free(o.ids);
    if (o.pend != o.pend_stack) free(o.pend);
    if (buf != buf_stack) free(buf);
    return result;
}

static PyMethodDef Encoder_methods[] = {
    {"encode", (PyCFunction)(void (*)(void))Encoder_encode, METH_FASTCALL | METH_KEYWORDS,
     "encode(text, past_table={}) -> (ids, ext_table): CPMBeeTokenizer.encode in one call."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tokenization._longest_match.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Encoder(trie, encoder, error_cls): CPM-Bee's encode (special tokens, ext ids) in C.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Encoder_init,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_methods = Encoder_methods,
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_longest_match",
    "Compiled greedy longest-match core for tokenization.longest_match.", -1, NULL,
};

PyMODINIT_FUNC PyInit__longest_match(void) {
    if (PyType_Ready(&TrieType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    if (PyType_Ready(&EncoderType) < 0) return NULL;
    Py_INCREF(&TrieType);
    if (PyModule_AddObject(m, "Trie", (PyObject *)&TrieType) < 0) {
        Py_DECREF(&TrieType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&EncoderType);
    if (PyModule_AddObject(m, "Encoder", (PyObject *)&EncoderType) < 0) {
        Py_DECREF(&EncoderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
