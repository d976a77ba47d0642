/* Does a pickle share an object whose hash is not cached (a tuple, an int)?  See pickle_scan.py.
 *
 * A walk over the opcodes only, skipping their arguments: no object is built. Without GET,
 * BINGET, LONG_BINGET or DUP every object the unpickler builds is used once, so the hashing
 * it does for dict keys and set members is linear in the pickle's size. Sharing a str (hash
 * cached), a small int, a float, None, a bool, or an empty dict, list or set just built
 * (unhashable: a key holding one stops hashing there; filled later, it is still shared only
 * as itself) is as harmless, and that is what pickle writes for JSON-like records: repeated
 * keys and one-character strings come back as BINGETs. So each memo entry remembers whether
 * the object it was set from is one of those, known from the opcode that pushed it; a GET of
 * any other entry, a DUP, an unknown opcode or a truncated argument answers True, and the
 * slower Python scan looks at the pickle. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Skip a newline-terminated argument; -1 when there is no newline. */
static Py_ssize_t skip_line(const unsigned char *p, Py_ssize_t pos, Py_ssize_t n) {
    const unsigned char *nl = memchr(p + pos, '\n', (size_t)(n - pos));
    return nl == NULL ? -1 : (Py_ssize_t)(nl - p) + 1;
}

static uint64_t le(const unsigned char *p, int width) {
    uint64_t v = 0;
    for (int i = width - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

enum { UNSET = 0, HARMLESS = 1, OTHER = 2 }; /* what a memo entry was set from */

/* The memo's entries as far as the walk knows them: `memo[0:zeroed]` is valid (zeroed as
 * indices are first used, so a record of a few entries clears 64 bytes, not its length); `len` counts
 * entries set, which is where the unpickler's MEMOIZE puts the next one. */
typedef struct {
    unsigned char *kinds;
    Py_ssize_t size, zeroed, len;
} Memo;

/* Put the top of the stack (harmless or not) at memo index `index`, as the unpickler does. */
static int memo_put(Memo *memo, uint64_t index, int harmless) {
    if (index >= (uint64_t)memo->size) return -1; /* more entries than opcodes: cannot tell */
    if ((Py_ssize_t)index >= memo->zeroed) { /* 64 at a time: one memset per entry cost 3 ns each */
        Py_ssize_t end = (Py_ssize_t)index + 64 < memo->size ? (Py_ssize_t)index + 64 : memo->size;
        memset(memo->kinds + memo->zeroed, UNSET, (size_t)(end - memo->zeroed));
        memo->zeroed = end;
    }
    if (memo->kinds[index] == UNSET) memo->len++;
    memo->kinds[index] = harmless ? HARMLESS : OTHER;
    return 0;
}

/* 1: shares an object that is not harmless (or cannot tell), 0: does not. `memo` has room for
 * `n` entries: a pickle of n bytes sets fewer. */
static int shares(const unsigned char *p, Py_ssize_t n, Memo *memo) {
    Py_ssize_t pos = 0;
    int harmless = 0; /* the last object pushed is a str, small int, float, None, bool, or empty container */
    while (pos < n) {
        unsigned char op = p[pos++];
        Py_ssize_t fixed = 0; /* fixed-width argument bytes */
        int len_width = 0;    /* width of a length prefix before data */
        int pushes_harmless = 0;
        uint64_t index;
        switch (op) {
        case '.': return 0; /* STOP */
        case '2': return 1; /* DUP */
        case 'h': case 'j': /* BINGET, LONG_BINGET */
            if (n - pos < (op == 'h' ? 1 : 4)) return 1;
            index = le(p + pos, op == 'h' ? 1 : 4);
            if (index >= (uint64_t)memo->zeroed || memo->kinds[index] != HARMLESS) return 1;
            pos += op == 'h' ? 1 : 4;
            harmless = 1;
            continue;
        case 'q': case 'r': /* BINPUT, LONG_BINPUT */
            if (n - pos < (op == 'q' ? 1 : 4)) return 1;
            if (memo_put(memo, le(p + pos, op == 'q' ? 1 : 4), harmless) < 0) return 1;
            pos += op == 'q' ? 1 : 4;
            continue;
        case 0x94: /* MEMOIZE */
            if (memo_put(memo, (uint64_t)memo->len, harmless) < 0) return 1;
            continue;
        case 0x80: case 0x95: /* PROTO, FRAME: nothing pushed */
            pos += op == 0x80 ? 1 : 8;
            if (pos > n) return 1;
            continue;
        case 'g': case 'p': return 1; /* GET, PUT by decimal text: protocol 0, left to the scan */
        case '}': case ']': case 0x8f: case 'N': case 0x88: case 0x89: /* empty dict/list/set, None, bools */
            pushes_harmless = 1;
            break;
        case '(': case '0': case '1': case 'Q': case 'R': case 'a': case 'b': case 'd':
        case 'e': case 'l': case 'o': case 's': case 't': case ')': case 'u':
        case 0x81: case 0x85: case 0x86: case 0x87: case 0x90:
        case 0x91: case 0x92: case 0x93: case 0x97: case 0x98:
            break;
        case 'F': case 'V': /* FLOAT, UNICODE */
            pushes_harmless = 1;
            /* fall through */
        case 'I': case 'L': case 'P': case 'S':
            pos = skip_line(p, pos, n);
            if (pos < 0) return 1;
            break;
        case 'c': case 'i': /* GLOBAL, INST: two lines */
            pos = skip_line(p, pos, n);
            if (pos < 0) return 1;
            pos = skip_line(p, pos, n);
            if (pos < 0) return 1;
            break;
        case 'K': pushes_harmless = 1; fixed = 1; break; /* BININT1 */
        case 'M': pushes_harmless = 1; fixed = 2; break; /* BININT2 */
        case 'J': pushes_harmless = 1; fixed = 4; break; /* BININT */
        case 'G': pushes_harmless = 1; fixed = 8; break; /* BINFLOAT */
        case 0x82: fixed = 1; break;
        case 0x83: fixed = 2; break;
        case 0x84: fixed = 4; break;
        case 0x8c: pushes_harmless = 1; len_width = 1; break; /* SHORT_BINUNICODE */
        case 'X': pushes_harmless = 1; len_width = 4; break;   /* BINUNICODE */
        case 0x8d: pushes_harmless = 1; len_width = 8; break; /* BINUNICODE8 */
        case 'U': case 'C': case 0x8a: len_width = 1; break;
        case 'T': case 'B': case 0x8b: len_width = 4; break;
        case 0x8e: case 0x96: len_width = 8; break;
        default: return 1;
        }
        harmless = pushes_harmless;
        if (len_width) {
            if (n - pos < len_width) return 1;
            uint64_t len = le(p + pos, len_width);
            if (op == 'T' || op == 0x8b) { /* signed 4-byte lengths */
                if (len & 0x80000000u) return 1;
            }
            pos += len_width;
            if (len > (uint64_t)(n - pos)) return 1;
            pos += (Py_ssize_t)len;
        } else if (fixed) {
            if (n - pos < fixed) return 1;
            pos += fixed;
        }
    }
    return 1; /* no STOP */
}

static PyObject *shares_objects(PyObject *Py_UNUSED(self), PyObject *arg) {
    unsigned char small[1024];
    Memo memo = {small, 0, 0, 0};
    Py_buffer view;
    const unsigned char *data;
    Py_ssize_t n;
    int result;
    if (PyBytes_CheckExact(arg)) { /* what the readers pass: no buffer protocol needed */
        view.obj = NULL;
        data = (const unsigned char *)PyBytes_AS_STRING(arg);
        n = PyBytes_GET_SIZE(arg);
    } else {
        if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
        data = (const unsigned char *)view.buf;
        n = view.len;
    }
    memo.size = n;
    if (n > (Py_ssize_t)sizeof small) {
        memo.kinds = PyMem_Malloc((size_t)n);
        if (memo.kinds == NULL) {
            if (view.obj != NULL) PyBuffer_Release(&view);
            return PyErr_NoMemory();
        }
    }
    result = shares(data, n, &memo);
    if (memo.kinds != small) PyMem_Free(memo.kinds);
    if (view.obj != NULL) PyBuffer_Release(&view);
    return PyBool_FromLong(result);
}

static PyMethodDef methods[] = {
    {"shares_objects", shares_objects, METH_O,
     "shares_objects(pickle: bytes) -> bool: True when the pickle may use an object twice whose hash\n"
     "is not cached (a memo GET of anything but a str, small int, float, None, bool or new empty\n"
     "container; DUP; an unknown opcode; no STOP). False: its dict keys and set members hash in\n"
     "time linear in its size."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pickle_sharing", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__pickle_sharing(void) { return PyModule_Create(&module); }
