/* Compiled core of tokenization/longest_match.py: greedy longest-match segmentation.
 *
 * A character trie over the plain-text tokens, stored as one open-addressing hash table keyed
 * by (node, code point). Each node keeps the longest token that is a prefix of its path
 * (`best`: id << 16 | length, 0 = none), so one forward walk per token finds the answer.
 * Same contract as the pure-Python engine: segment(text) -> (ids, unknown), where ids holds
 * -1 for each unknown span and unknown lists (index in ids, span text).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

#define LEN_BITS 16
#define MAX_TOKEN_LEN ((1 << LEN_BITS) - 1)

typedef struct {
    uint64_t key; /* ((node << 21) | code point) + 1; 0 = empty slot */
    int32_t child;
} Slot;

typedef struct {
    PyObject_HEAD
    Slot *slots;
    uint64_t mask;
    int64_t *best;
    int32_t n_nodes;
    int32_t *root; /* child of the root for code points below ROOT_SPAN (-1: none): the first
                      step of every walk, without a hash probe */
} Trie;

#define ROOT_SPAN 0x10000

static inline uint64_t slot_of(uint64_t key, uint64_t mask) {
    return (key * 0x9E3779B97F4A7C15ULL >> 17) & mask;
}

static inline int32_t trie_find(const Trie *t, int32_t node, Py_UCS4 cp) {
    if (node == 0 && cp < ROOT_SPAN) return t->root[cp];
    uint64_t key = (((uint64_t)node << 21) | cp) + 1;
    uint64_t i = slot_of(key, t->mask);
    for (;;) {
        uint64_t k = t->slots[i].key;
        if (k == key) return t->slots[i].child;
        if (k == 0) return -1;
        i = (i + 1) & t->mask;
    }
}

static void trie_insert(Trie *t, int32_t node, Py_UCS4 cp, int32_t child) {
    uint64_t key = (((uint64_t)node << 21) | cp) + 1;
    uint64_t i = slot_of(key, t->mask);
    while (t->slots[i].key != 0) i = (i + 1) & t->mask;
    t->slots[i].key = key;
    t->slots[i].child = child;
}

static void Trie_dealloc(Trie *self) {
    free(self->root);
    free(self->slots);
    free(self->best);
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
        if (len == 0 || len > MAX_TOKEN_LEN) {
            PyErr_Format(PyExc_ValueError, "token length %zd outside 1..%d", len, MAX_TOKEN_LEN);
            return -1;
        }
        total += len;
    }
    uint64_t cap = 1024;
    while (cap < (uint64_t)total * 2) cap <<= 1;
    free(self->slots);
    free(self->best);
    free(self->root);
    self->root = malloc(ROOT_SPAN * sizeof(int32_t));
    if (self->root) {
        for (int32_t c = 0; c < ROOT_SPAN; c++) self->root[c] = -1;
    }
    self->slots = calloc(cap, sizeof(Slot));
    self->best = calloc((size_t)total, sizeof(int64_t));
    int32_t *parent = malloc((size_t)total * sizeof(int32_t));
    if (!self->slots || !self->best || !parent || !self->root) {
        free(parent);
        PyErr_NoMemory();
        return -1;
    }
    self->mask = cap - 1;
    self->n_nodes = 1;
    parent[0] = -1;
    pos = 0;
    while (PyDict_Next(pieces, &pos, &key, &value)) {
        long id = PyLong_AsLong(value);
        if (id < 0 || id > INT32_MAX) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "token id %ld out of range", id);
            free(parent);
            return -1;
        }
        int kind = PyUnicode_KIND(key);
        const void *data = PyUnicode_DATA(key);
        Py_ssize_t len = PyUnicode_GET_LENGTH(key);
        int32_t node = 0;
        for (Py_ssize_t j = 0; j < len; j++) {
            Py_UCS4 cp = PyUnicode_READ(kind, data, j);
            int32_t child = trie_find(self, node, cp);
            if (child < 0) {
                child = self->n_nodes++;
                parent[child] = node;
                if (node == 0 && cp < ROOT_SPAN)
                    self->root[cp] = child;
                else
                    trie_insert(self, node, cp, child);
            }
            node = child;
        }
        self->best[node] = ((int64_t)id << LEN_BITS) | len;
    }
    /* Parents are created before children: one pass in index order inherits the best. */
    for (int32_t n = 1; n < self->n_nodes; n++) {
        if (self->best[n] == 0) self->best[n] = self->best[parent[n]];
    }
    free(parent);
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

static PyObject *Trie_segment(Trie *self, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "text must be str");
        return NULL;
    }
    if (!self->slots) {
        PyErr_SetString(PyExc_RuntimeError, "Trie was not initialised");
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    PyObject *ids = PyList_New(0);
    PyObject *unknown = PyList_New(0);
    if (!ids || !unknown) goto fail;
    Py_ssize_t p = 0, unk_start = -1;
    while (p < n) {
        int32_t node = 0;
        for (Py_ssize_t q = p; q < n; q++) {
            int32_t child = trie_find(self, node, PyUnicode_READ(kind, data, q));
            if (child < 0) break;
            node = child;
        }
        int64_t best = self->best[node];
        if (best) {
            if (unk_start >= 0) {
                if (flush_unknown(ids, unknown, text, unk_start, p) < 0) goto fail;
                unk_start = -1;
            }
            PyObject *id = PyLong_FromLongLong(best >> LEN_BITS);
            if (!id) goto fail;
            int rc = PyList_Append(ids, id);
            Py_DECREF(id);
            if (rc < 0) goto fail;
            p += best & MAX_TOKEN_LEN;
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

/* plain_ids(text) -> list | None: the ids when text has no `<` and no unknown character (the
 * common case, done without leaving C), else None so the caller takes the general path. */
static PyObject *Trie_plain_ids(Trie *self, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "text must be str, not %s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    if (!self->slots) {
        PyErr_SetString(PyExc_RuntimeError, "Trie was not initialised");
        return NULL;
    }
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
        int32_t node = 0;
        for (Py_ssize_t q = p; q < n; q++) {
            int32_t child = trie_find(self, node, PyUnicode_READ(kind, data, q));
            if (child < 0) break;
            node = child;
        }
        int64_t best = self->best[node];
        if (!best) {
            Py_DECREF(ids);
            Py_RETURN_NONE;
        }
        PyObject *id = PyLong_FromLongLong(best >> LEN_BITS);
        if (!id || PyList_Append(ids, id) < 0) {
            Py_XDECREF(id);
            Py_DECREF(ids);
            return NULL;
        }
        Py_DECREF(id);
        p += best & MAX_TOKEN_LEN;
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

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_longest_match",
    "Compiled greedy longest-match core for tokenization.longest_match.", -1, NULL,
};

PyMODINIT_FUNC PyInit__longest_match(void) {
    if (PyType_Ready(&TrieType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&TrieType);
    if (PyModule_AddObject(m, "Trie", (PyObject *)&TrieType) < 0) {
        Py_DECREF(&TrieType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
