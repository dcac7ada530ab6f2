/* np.searchsorted for nearly sorted keys, by galloping from the previous answer.
 *
 * Why: the fairness analysis asks hundreds of millions of searches on arrays of tens of
 * millions (ranks of times, prefix ends of candidate lists), with keys that come nearly
 * sorted (tickets in join order). A binary search from scratch costs a cache miss per
 * level; starting from the previous key's answer and doubling the step costs a few
 * comparisons on memory already in cache. search.py falls back to its numpy merge when
 * this extension is not built; tests/test_fairness_search_c.py checks both against
 * np.searchsorted.
 *
 * Exactness: the same predicate as numpy's (float64: NaN sorts last, so a < b is
 * `a < b || (b != b && a == a)`), searched on the same ascending array, gives the same
 * boundary whatever the starting point. `minus` is subtracted from each key as the double
 * `key - minus`, the same rounding as numpy's `keys - minus`.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

static inline int lt_f64(double a, double b) { return a < b || (b != b && a == a); }

/* Number of leading elements of a[0:n) that are "before" the key, for side left (a[i] < key)
 * or side right (!(key < a[i])). BEFORE(i) holds for a prefix of an ascending array. */
#define GALLOP(NAME, T, BEFORE)                                                                  \
    static void NAME(const T *a, Py_ssize_t n, const T *keys, Py_ssize_t m, double minus,        \
                     int right, void *out, int out64) {                                          \
        Py_ssize_t g = 0;                                                                        \
        for (Py_ssize_t k = 0; k < m; k++) {                                                     \
            T key = (T)(keys[k] - (T)minus);                                                     \
            Py_ssize_t lo, hi; /* answer in (lo, hi]: BEFORE(lo) or lo == -1; !BEFORE(hi) or hi == n */ \
            if (g < n && BEFORE(a[g], key, right)) {                                             \
                Py_ssize_t step = 1;                                                             \
                lo = g;                                                                          \
                hi = g + 1;                                                                      \
                while (hi < n && BEFORE(a[hi], key, right)) {                                    \
                    lo = hi;                                                                     \
                    step <<= 1;                                                                  \
                    hi = lo + step;                                                              \
                }                                                                                \
                if (hi > n) hi = n;                                                              \
            } else {                                                                             \
                Py_ssize_t step = 1;                                                             \
                hi = g;                                                                          \
                lo = g - 1;                                                                      \
                while (lo >= 0 && !BEFORE(a[lo], key, right)) {                                  \
                    hi = lo;                                                                     \
                    step <<= 1;                                                                  \
                    lo = hi - step;                                                              \
                }                                                                                \
                if (lo < -1) lo = -1;                                                            \
            }                                                                                    \
            while (hi - lo > 1) {                                                                \
                Py_ssize_t mid = lo + ((hi - lo) >> 1);                                          \
                if (BEFORE(a[mid], key, right)) lo = mid; else hi = mid;                         \
            }                                                                                    \
            g = hi;                                                                              \
            if (out64) ((int64_t *)out)[k] = (int64_t)hi; else ((int32_t *)out)[k] = (int32_t)hi; \
        }                                                                                        \
    }

#define BEFORE_F64(x, key, right) ((right) ? !lt_f64((key), (x)) : lt_f64((x), (key)))
#define BEFORE_I64(x, key, right) ((right) ? !((key) < (x)) : ((x) < (key)))

GALLOP(gallop_f64, double, BEFORE_F64)
GALLOP(gallop_i64, int64_t, BEFORE_I64)

static int get_1d(PyObject *obj, Py_buffer *view, int writable, const char *what) {
    if (PyObject_GetBuffer(obj, view, (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (view->ndim != 1) {
        PyErr_Format(PyExc_ValueError, "%s must be one-dimensional", what);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static char kind_of(const Py_buffer *v) {
    const char *f = v->format ? v->format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    if (v->itemsize == 8 && (*f == 'd')) return 'f';
    if (v->itemsize == 8 && (*f == 'q' || *f == 'l')) return 'i';
    if (v->itemsize == 4 && (*f == 'i' || *f == 'l')) return '4';
    return '?';
}

static PyObject *searchsorted(PyObject *self, PyObject *args) {
    PyObject *ao, *ko, *oo;
    int right;
    double minus;
    if (!PyArg_ParseTuple(args, "OOpdO", &ao, &ko, &right, &minus, &oo)) return NULL;
    Py_buffer a, k, o;
    if (get_1d(ao, &a, 0, "a") < 0) return NULL;
    if (get_1d(ko, &k, 0, "keys") < 0) { PyBuffer_Release(&a); return NULL; }
    if (get_1d(oo, &o, 1, "out") < 0) { PyBuffer_Release(&a); PyBuffer_Release(&k); return NULL; }
    char ka = kind_of(&a), kk = kind_of(&k), ko_ = kind_of(&o);
    Py_ssize_t n = a.len / a.itemsize, m = k.len / k.itemsize;
    const char *err = NULL;
    if (ka != kk || (ka != 'f' && ka != 'i')) err = "a and keys must both be float64 or both int64";
    else if (ko_ != 'i' && ko_ != '4') err = "out must be int64 or int32";
    else if (o.len / o.itemsize != m) err = "out must have one slot per key";
    else if (ka == 'i' && minus != 0.0) err = "minus applies to float64 keys";
    else if (ko_ == '4' && n > INT32_MAX) err = "int32 out for an array of more than 2**31 - 1 elements";
    if (err) {
        PyErr_SetString(PyExc_TypeError, err);
    } else {
        Py_BEGIN_ALLOW_THREADS
        if (ka == 'f')
            gallop_f64((const double *)a.buf, n, (const double *)k.buf, m, minus, right, o.buf, ko_ == 'i');
        else
            gallop_i64((const int64_t *)a.buf, n, (const int64_t *)k.buf, m, 0.0, right, o.buf, ko_ == 'i');
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&a);
    PyBuffer_Release(&k);
    PyBuffer_Release(&o);
    if (err) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"searchsorted", searchsorted, METH_VARARGS,
     "searchsorted(a, keys, right, minus, out): out[i] = np.searchsorted(a, keys[i] - minus, side), "
     "galloping from the previous answer (a ascending; float64 or int64; out int32 or int64)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_search", NULL, -1, methods};

PyMODINIT_FUNC PyInit__search(void) { return PyModule_Create(&module); }
