/*
 * dragonfly._speedups: hot-path functions in C (the list is in dragonfly/accel.py).
 *
 * Optional: without this module the pure-Python twins run (in
 * dragonfly/core/aggregator.py, bbo.py, liquidity.py, listener.py and
 * book.py, dragonfly/serve/encode.py, dragonfly/venues/bitstamp.py and
 * dragonfly/fix/mdcodec.py), and tests/core/test_accel.py (and
 * tests/fix/test_book_encoder.py) check that both give the same results.
 *
 * merge_side(runs, depth, descending, level_type) -> tuple
 *     runs: a sequence of (name, side) pairs in venue-name order; a side is a
 *     sequence of (price, amount) pairs, best first, distinct prices (what a
 *     VenueBook holds). Returns the best `depth` levels across the runs as
 *     `level_type` tuples (exchange, price, amount): by price (descending if
 *     `descending`), then larger amount, then earlier run. The price and
 *     amount objects are the runs' own (no new floats). `level_type` is
 *     tuple or a class derived from it by a class statement (a NamedTuple);
 *     anything else (a struct sequence such as time.struct_time) TypeError.
 *
 * encode_summary(book, send_ns, clock) -> bytes
 *     A MergedBook as an orderbook.Summary: the bytes the official serializer
 *     writes (fields in number order; proto3 omits the empty string, integer
 *     0 and a double whose bits are all zero, +0.0 only). Levels are Level
 *     messages {exchange = 1: string, price = 2: double, amount = 3: double}.
 *
 * Every function here is run by scripts/fuzz_speedups.py under ASan and
 * UBSan (python3 dev.py fuzz), against its Python twin; a new one must be too.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/*
 * References. Every call into Python (a level's __float__, a key's __hash__
 * or __eq__, a SortedDict method, the clock, or the garbage collector that
 * any allocation may start) can change a list the caller passed us and free
 * what it held. So nothing is borrowed across such a call unless its owner is
 * held: a tuple we hold a reference to (immutable, so its items live as long
 * as it does), or an object we hold ourselves. A list is indexed only after
 * its current size is read, with no call into Python in between.
 */
typedef struct {
    PyObject *pair;  /* the (name, side) tuple (a new reference): owns name */
    PyObject *name;  /* borrowed from pair */
    PyObject *seq;   /* PySequence_Fast of the side (a new reference) */
    Py_ssize_t pos;
    Py_ssize_t len;  /* pos == len: exhausted */
    PyObject *level; /* the head level (a new reference): owns price and amount */
    PyObject *price;
    PyObject *amount;
    double p;
    double a;
} Run;

/* Load run->pos's level into the run's head, or mark the run exhausted when
 * its side has no level there any more; -1 with an exception set. */
static int
load_head(Run *run)
{
    if (run->pos >= PySequence_Fast_GET_SIZE(run->seq)) {
        run->len = run->pos; /* the side shrank under us (a list changed by Python code) */
        Py_CLEAR(run->level);
        return 0;
    }
    PyObject *level = PySequence_Fast_GET_ITEM(run->seq, run->pos);
    if (!PyTuple_Check(level) || PyTuple_GET_SIZE(level) != 2) {
        PyErr_SetString(PyExc_TypeError, "a level must be a (price, amount) tuple");
        return -1;
    }
    Py_XSETREF(run->level, Py_NewRef(level));
    run->price = PyTuple_GET_ITEM(level, 0);
    run->amount = PyTuple_GET_ITEM(level, 1);
    run->p = PyFloat_AsDouble(run->price);
    if (run->p == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    run->a = PyFloat_AsDouble(run->amount);
    if (run->a == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    return 0;
}

/* The type tuple subclasses made by a class statement deallocate with (the
 * interpreter's subtype_dealloc), read from a probe class once. */
static destructor subclass_dealloc = NULL;

/*
 * Whether `type` makes 3-tuples safely from tp_alloc(type, 3): tuple itself,
 * or classes derived from it by class statements (a NamedTuple), whose
 * instances are laid out as a tuple's. Not a struct sequence
 * (time.struct_time, os.stat_result): those hold hidden fields past the
 * visible ones, which their dealloc reads whatever size was allocated.
 */
static int
plain_tuple_type(PyTypeObject *type)
{
    if (subclass_dealloc == NULL) {
        PyObject *probe = PyObject_CallFunction((PyObject *)&PyType_Type, "s(O){s:()}", "probe",
                                                (PyObject *)&PyTuple_Type, "__slots__");
        if (probe == NULL) {
            return -1;
        }
        subclass_dealloc = ((PyTypeObject *)probe)->tp_dealloc;
        Py_DECREF(probe);
    }
    for (PyTypeObject *t = type; t != &PyTuple_Type; t = t->tp_base) {
        if (t == NULL || !(t->tp_flags & Py_TPFLAGS_HEAPTYPE) || t->tp_dealloc != subclass_dealloc ||
            t->tp_itemsize != PyTuple_Type.tp_itemsize || t->tp_alloc != PyType_GenericAlloc) {
            return 0;
        }
    }
    return 1;
}

/*
 * `seq` as a tuple (a new reference): a tuple itself, else a copy. Not
 * PySequence_Tuple: on Python 3.11 it sizes the copy, allocates it (which can
 * collect garbage, whose finalizers can empty the list) and then copies the
 * list's old item array. Here the size is read again after the allocation,
 * with nothing in between that runs Python.
 */
static PyObject *
tuple_snapshot(PyObject *seq, const char *message)
{
    if (PyTuple_Check(seq)) {
        return Py_NewRef(seq); /* immutable: its items live as long as it does */
    }
    PyObject *fast = PySequence_Fast(seq, message); /* a list: seq's own, or a new one */
    if (fast == NULL) {
        return NULL;
    }
    for (int tries = 0; tries < 100; tries++) {
        Py_ssize_t n = PyList_GET_SIZE(fast);
        PyObject *copy = PyTuple_New(n);
        if (copy == NULL) {
            Py_DECREF(fast);
            return NULL;
        }
        if (PyList_GET_SIZE(fast) == n) {
            for (Py_ssize_t i = 0; i < n; i++) {
                PyTuple_SET_ITEM(copy, i, Py_NewRef(PyList_GET_ITEM(fast, i)));
            }
            Py_DECREF(fast);
            return copy;
        }
        Py_DECREF(copy); /* the list changed while the copy was allocated */
    }
    Py_DECREF(fast);
    PyErr_SetString(PyExc_RuntimeError, "a sequence kept changing while it was read");
    return NULL;
}

#define SMALL_RUNS 16

static PyObject *
merge_side(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "merge_side(runs, depth, descending, level_type)");
        return NULL;
    }
    Py_ssize_t depth = PyLong_AsSsize_t(args[1]);
    if (depth == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (depth < 0) {
        PyErr_SetString(PyExc_ValueError, "depth must not be negative");
        return NULL;
    }
    int descending = PyObject_IsTrue(args[2]);
    if (descending < 0) {
        return NULL;
    }
    PyObject *type_obj = args[3];
    if (!PyType_Check(type_obj) || !PyType_IsSubtype((PyTypeObject *)type_obj, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "level_type must be a tuple subclass");
        return NULL;
    }
    PyTypeObject *level_type = (PyTypeObject *)type_obj;
    int plain = plain_tuple_type(level_type);
    if (plain <= 0) {
        if (plain == 0) {
            PyErr_SetString(PyExc_TypeError,
                            "level_type must be tuple or a class derived from it (a NamedTuple), "
                            "not a struct sequence or a C subclass");
        }
        return NULL;
    }

    PyObject *runs_seq = PySequence_Fast(args[0], "runs must be a sequence");
    if (runs_seq == NULL) {
        return NULL;
    }
    Py_ssize_t k = PySequence_Fast_GET_SIZE(runs_seq);
    Run small[SMALL_RUNS];
    Run *runs = small;
    if (k > SMALL_RUNS) {
        runs = PyMem_Calloc((size_t)k, sizeof(Run));
        if (runs == NULL) {
            Py_DECREF(runs_seq);
            return PyErr_NoMemory();
        }
    }
    else {
        memset(small, 0, sizeof(small));
    }
    PyObject *result = NULL;
    int ok = 0;
    Py_ssize_t n = 0;
    Py_ssize_t total = 0;

    /* k stays the size of `runs` (what done: releases); a runs list that
     * shrinks while a side is read (an iterable side runs Python) ends the
     * loop at its new size. */
    Py_ssize_t used = 0;
    for (; used < k && used < PySequence_Fast_GET_SIZE(runs_seq); used++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(runs_seq, used);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "a run must be a (name, side) tuple");
            goto done;
        }
        Run *run = &runs[used];
        run->pair = Py_NewRef(pair);
        run->name = PyTuple_GET_ITEM(pair, 0);
        run->seq = PySequence_Fast(PyTuple_GET_ITEM(pair, 1), "a side must be a sequence");
        if (run->seq == NULL) {
            goto done;
        }
        run->len = PySequence_Fast_GET_SIZE(run->seq);
        if (run->len > PY_SSIZE_T_MAX - total) {
            PyErr_SetString(PyExc_OverflowError, "too many levels");
            goto done;
        }
        total += run->len;
        if (run->len > 0 && load_head(run) < 0) {
            goto done;
        }
    }
    if (total < depth) {
        depth = total;
    }
    result = PyTuple_New(depth);
    if (result == NULL) {
        goto done;
    }
    for (n = 0; n < depth; n++) {
        Run *best = NULL;
        for (Py_ssize_t i = 0; i < used; i++) {
            Run *run = &runs[i];
            if (run->pos >= run->len) {
                continue;
            }
            if (best == NULL) {
                best = run;
                continue;
            }
            /* Strictly better only: an equal level keeps the earlier run. */
            int better = descending ? run->p > best->p : run->p < best->p;
            if (!better && run->p == best->p) {
                better = run->a > best->a;
            }
            if (better) {
                best = run;
            }
        }
        if (best == NULL) {
            break; /* fewer levels than counted: a side shrank while it was read */
        }
        /* tp_alloc may collect garbage (and so run Python code): the head's
         * objects are owned by best->level, which only load_head replaces. */
        PyObject *level = level_type->tp_alloc(level_type, 3);
        if (level == NULL) {
            goto done;
        }
        PyTuple_SET_ITEM(level, 0, Py_NewRef(best->name));
        PyTuple_SET_ITEM(level, 1, Py_NewRef(best->price));
        PyTuple_SET_ITEM(level, 2, Py_NewRef(best->amount));
        PyTuple_SET_ITEM(result, n, level);
        best->pos++;
        if (best->pos < best->len && load_head(best) < 0) {
            goto done;
        }
    }
    if (n < depth) {
        Py_SETREF(result, PyTuple_GetSlice(result, 0, n));
        if (result == NULL) {
            goto done;
        }
    }
    ok = 1;

done:
    for (Py_ssize_t i = 0; i < k; i++) {
        Py_XDECREF(runs[i].seq);
        Py_XDECREF(runs[i].level);
        Py_XDECREF(runs[i].pair);
    }
    if (runs != small) {
        PyMem_Free(runs);
    }
    Py_DECREF(runs_seq);
    if (!ok) {
        Py_XDECREF(result);
        return NULL;
    }
    return result;
}

/*
 * venue_states(state_type, names, books, healths, members, now, codes) -> tuple | None
 *     Every venue's state in an update (the aggregator's _states; its twin is
 *     venue_states_py in dragonfly/core/aggregator.py). names, books and
 *     healths are sequences of one length, by rank; a book is None or a tuple
 *     (a VenueBook) with recv_ns at [3] and seq at [5]; a health is None or
 *     has data_ns and status; members holds bit r (in the merge) and bit
 *     count + r (flagged) for rank r; codes is (live, stale, outlier,
 *     unknown). Returns a tuple of `state_type` tuples (name, in_merge,
 *     status, data_ns, age_ns, seq), or None, before any Python code runs,
 *     where the twin must decide: more than 32 venues, members not an int in
 *     [0, 2**64), a book that is neither None nor a plain tuple of 6 items
 *     or more. Attributes are read, compared and subtracted in the twin's
 *     order, with Python's own operations, so what a health's properties do
 *     (or raise) happens here as there.
 */
static PyObject *interned(PyObject **slot, const char *text);
static PyObject *str_data_ns, *str_status; /* interned attribute names, held for the module's life */

static PyObject *
venue_states(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "venue_states(state_type, names, books, healths, members, now, codes)");
        return NULL;
    }
    PyObject *type_obj = args[0];
    if (!PyType_Check(type_obj) || !PyType_IsSubtype((PyTypeObject *)type_obj, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "state_type must be a tuple subclass");
        return NULL;
    }
    PyTypeObject *state_type = (PyTypeObject *)type_obj;
    int plain = plain_tuple_type(state_type);
    if (plain <= 0) {
        if (plain == 0) {
            PyErr_SetString(PyExc_TypeError, "state_type must be tuple or a class derived from it (a NamedTuple)");
        }
        return NULL;
    }
    if (!PyTuple_Check(args[6]) || PyTuple_GET_SIZE(args[6]) != 4) {
        PyErr_SetString(PyExc_TypeError, "codes must be a (live, stale, outlier, unknown) tuple");
        return NULL;
    }
    PyObject *codes = args[6];
    PyObject *live = PyTuple_GET_ITEM(codes, 0), *stale = PyTuple_GET_ITEM(codes, 1);
    PyObject *outlier = PyTuple_GET_ITEM(codes, 2), *unknown = PyTuple_GET_ITEM(codes, 3);
    PyObject *now = args[5];

    /* Copies (tuples): what a health's property does to the lists cannot move them under us. */
    PyObject *names = NULL, *books = NULL, *healths = NULL, *result = NULL, *zero = NULL;
    names = tuple_snapshot(args[1], "names must be a sequence");
    if (names == NULL) {
        goto done;
    }
    books = tuple_snapshot(args[2], "books must be a sequence");
    if (books == NULL) {
        goto done;
    }
    healths = tuple_snapshot(args[3], "healths must be a sequence");
    if (healths == NULL) {
        goto done;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(names);
    if (PyTuple_GET_SIZE(books) != count || PyTuple_GET_SIZE(healths) != count) {
        PyErr_SetString(PyExc_ValueError, "names, books and healths must have one item per venue");
        goto done;
    }
    /* Declined (None): the twin decides. Nothing has run Python code yet. */
    if (count > 32 || !PyLong_CheckExact(args[4])) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    unsigned long long members = PyLong_AsUnsignedLongLong(args[4]);
    if (members == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear(); /* negative or too large: the twin's */
        result = Py_NewRef(Py_None);
        goto done;
    }
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *book = PyTuple_GET_ITEM(books, r);
        if (book == Py_None) {
            continue;
        }
        PyTypeObject *bt = Py_TYPE(book);
        if (!PyTuple_Check(book) || PyTuple_GET_SIZE(book) < 6 || bt->tp_as_mapping == NULL ||
            bt->tp_as_mapping->mp_subscript != PyTuple_Type.tp_as_mapping->mp_subscript) {
            result = Py_NewRef(Py_None);
            goto done;
        }
    }
    if (interned(&str_data_ns, "data_ns") == NULL || interned(&str_status, "status") == NULL) {
        goto done;
    }
    zero = PyLong_FromLong(0);
    if (zero == NULL) {
        goto done;
    }
    result = PyTuple_New(count);
    if (result == NULL) {
        goto done;
    }
    for (Py_ssize_t r = 0; r < count; r++) {
        int in_merge = (int)((members >> r) & 1u);
        int flagged = (int)((members >> (count + r)) & 1u);
        PyObject *book = PyTuple_GET_ITEM(books, r);
        PyObject *health = PyTuple_GET_ITEM(healths, r);
        PyObject *data_ns, *status;
        if (health == Py_None) {
            data_ns = Py_NewRef(book != Py_None ? PyTuple_GET_ITEM(book, 3) : zero);
            status = Py_NewRef(book != Py_None ? live : unknown);
        }
        else {
            data_ns = PyObject_GetAttr(health, str_data_ns);
            if (data_ns == NULL) {
                goto fail;
            }
            status = PyObject_GetAttr(health, str_status);
            if (status == NULL) {
                Py_DECREF(data_ns);
                goto fail;
            }
            /* status == live first, always, as the twin's `and` chain does. */
            PyObject *eq = PyObject_RichCompare(status, live, Py_EQ);
            int is_live = eq == NULL ? -1 : PyObject_IsTrue(eq);
            Py_XDECREF(eq);
            if (is_live < 0) {
                Py_DECREF(data_ns);
                Py_DECREF(status);
                goto fail;
            }
            if (is_live && !in_merge && book != Py_None && !flagged) {
                Py_SETREF(status, Py_NewRef(stale));
            }
        }
        if (flagged) {
            Py_SETREF(status, Py_NewRef(outlier));
        }
        int has_data = PyObject_IsTrue(data_ns);
        PyObject *age = has_data < 0 ? NULL : has_data ? PyNumber_Subtract(now, data_ns) : Py_NewRef(zero);
        if (age == NULL) {
            Py_DECREF(data_ns);
            Py_DECREF(status);
            goto fail;
        }
        /* tp_alloc may collect garbage (Python code): every item is held by now. */
        PyObject *state = state_type->tp_alloc(state_type, 6);
        if (state == NULL) {
            Py_DECREF(data_ns);
            Py_DECREF(status);
            Py_DECREF(age);
            goto fail;
        }
        PyTuple_SET_ITEM(state, 0, Py_NewRef(PyTuple_GET_ITEM(names, r)));
        PyTuple_SET_ITEM(state, 1, Py_NewRef(in_merge ? Py_True : Py_False));
        PyTuple_SET_ITEM(state, 2, status);
        PyTuple_SET_ITEM(state, 3, data_ns);
        PyTuple_SET_ITEM(state, 4, age);
        PyTuple_SET_ITEM(state, 5, Py_NewRef(book != Py_None ? PyTuple_GET_ITEM(book, 5) : zero));
        PyTuple_SET_ITEM(result, r, state);
    }
    goto done;

fail:
    Py_CLEAR(result);
done:
    Py_XDECREF(zero);
    Py_XDECREF(names);
    Py_XDECREF(books);
    Py_XDECREF(healths);
    return result;
}

static size_t
varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static char *
write_varint(char *out, uint64_t v)
{
    while (v >= 0x80) {
        *out++ = (char)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    *out++ = (char)v;
    return out;
}

static int
is_default_double(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    return bits == 0;
}

typedef struct {
    const char *name;
    Py_ssize_t name_len;
    double price;
    double amount;
    size_t body;
} LevelParts;

#define SMALL_LEVELS 64

/* One side's levels, read and sized before they are written. */
typedef struct {
    PyObject *seq; /* the levels as a tuple (a new reference): owns each level, so
                    * each name's UTF-8 stays valid past the clock's call */
    Py_ssize_t count;
    LevelParts small[SMALL_LEVELS];
    LevelParts *parts;
    size_t size; /* bytes of all the fields */
} Levels;

static void
levels_release(Levels *lv)
{
    if (lv->parts != NULL && lv->parts != lv->small) {
        PyMem_Free(lv->parts);
    }
    lv->parts = NULL;
    Py_CLEAR(lv->seq);
}

/* Read and size `levels`; 0, or -1 with an exception set (release either way). */
static int
levels_prepare(Levels *lv, PyObject *levels)
{
    lv->parts = NULL;
    lv->size = 0;
    lv->seq = tuple_snapshot(levels, "levels must be a sequence"); /* a MergedBook's tuple: not copied */
    if (lv->seq == NULL) {
        return -1;
    }
    lv->count = PyTuple_GET_SIZE(lv->seq);
    lv->parts = lv->small;
    if (lv->count > SMALL_LEVELS) {
        lv->parts = PyMem_Malloc((size_t)lv->count * sizeof(LevelParts));
        if (lv->parts == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    for (Py_ssize_t i = 0; i < lv->count; i++) {
        PyObject *level = PyTuple_GET_ITEM(lv->seq, i);
        if (!PyTuple_Check(level) || PyTuple_GET_SIZE(level) != 3) {
            PyErr_SetString(PyExc_TypeError, "a level must be an (exchange, price, amount) tuple");
            return -1;
        }
        LevelParts *lp = &lv->parts[i];
        lp->name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(level, 0), &lp->name_len);
        if (lp->name == NULL) {
            return -1;
        }
        lp->price = PyFloat_AsDouble(PyTuple_GET_ITEM(level, 1));
        if (lp->price == -1.0 && PyErr_Occurred()) {
            return -1;
        }
        lp->amount = PyFloat_AsDouble(PyTuple_GET_ITEM(level, 2));
        if (lp->amount == -1.0 && PyErr_Occurred()) {
            return -1;
        }
        size_t body = 0;
        if (lp->name_len > 0) {
            body += 1 + varint_size((uint64_t)lp->name_len) + (size_t)lp->name_len;
        }
        if (!is_default_double(lp->price)) {
            body += 9;
        }
        if (!is_default_double(lp->amount)) {
            body += 9;
        }
        lp->body = body;
        lv->size += 1 + varint_size(body) + body;
    }
    return 0;
}

static char *
write_double(char *out, unsigned char key, double x)
{
    *out++ = (char)key;
    PyFloat_Pack8(x, out, 1); /* cannot fail for a C double with le=1 */
    return out + 8;
}

static char *
levels_write(char *out, unsigned char key, const Levels *lv)
{
    for (Py_ssize_t i = 0; i < lv->count; i++) {
        const LevelParts *lp = &lv->parts[i];
        *out++ = (char)key;
        out = write_varint(out, lp->body);
        if (lp->name_len > 0) {
            *out++ = 0x0A;
            out = write_varint(out, (uint64_t)lp->name_len);
            memcpy(out, lp->name, (size_t)lp->name_len);
            out += lp->name_len;
        }
        if (!is_default_double(lp->price)) {
            out = write_double(out, 0x11, lp->price);
        }
        if (!is_default_double(lp->amount)) {
            out = write_double(out, 0x19, lp->amount);
        }
    }
    return out;
}

/* An integer field's value as the uint64 on the wire; -1 with ValueError set. */
static int
wire_integer(PyObject *value, int is_signed, const char *what, uint64_t *out)
{
    if (is_signed) {
        long long v = PyLong_AsLongLong(value);
        if (v == -1 && PyErr_Occurred()) {
            goto range;
        }
        *out = (uint64_t)v; /* two's complement, as proto3 writes int64 */
        return 0;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(value);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        goto range;
    }
    *out = (uint64_t)v;
    return 0;
range:
    if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s field out of range: %R", what, value);
    }
    return -1;
}

/* UTF-8 of a string field; NULL with an exception set. */
static const char *
utf8(PyObject *text, Py_ssize_t *len)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "a string field must be a str");
        return NULL;
    }
    return PyUnicode_AsUTF8AndSize(text, len);
}

static char *
write_string(char *out, unsigned char key, const char *data, Py_ssize_t len)
{
    *out++ = (char)key;
    out = write_varint(out, (uint64_t)len);
    memcpy(out, data, (size_t)len);
    return out + len;
}

static char *
write_integer(char *out, unsigned char key, uint64_t v)
{
    *out++ = (char)key;
    return write_varint(out, v);
}

/* Summary field keys (number << 3 | wire type). */
#define SUMMARY_SPREAD 0x09
#define SUMMARY_BIDS 0x12
#define SUMMARY_ASKS 0x1A
#define SUMMARY_INSTRUMENT 0x22
#define SUMMARY_SEQUENCE 0x28
#define SUMMARY_RECV_NS 0x30
#define SUMMARY_PUBLISH_NS 0x38
#define SUMMARY_SEND_NS 0x40
#define SUMMARY_SOURCE_VENUE 0x4A
#define SUMMARY_SOURCE_FRAME 0x50

/*
 * encode_summary(book, send_ns, clock) -> bytes
 *     `book` a MergedBook (instrument, spread, bids, asks, sequence, recv_ns,
 *     publish_ns, source_venue, source_frame). With `clock` not None,
 *     publish_ns is clock(), called once the levels are read (the stamp
 *     covers the merge and the encoding).
 */
static PyObject *
encode_summary(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "encode_summary(book, send_ns, clock)");
        return NULL;
    }
    PyObject *book = args[0];
    /* Fields 1-10 of a MergedBook (a tuple of 10: its last, the venue
     * states, field 11, is encoded by the Python caller and appended). */
    if (!PyTuple_Check(book) || PyTuple_GET_SIZE(book) < 9 || PyTuple_GET_SIZE(book) > 10) {
        PyErr_SetString(PyExc_TypeError, "book must be a MergedBook");
        return NULL;
    }
    PyObject *clock = args[2];
    Levels bids, asks;
    bids.seq = asks.seq = NULL;
    bids.parts = asks.parts = NULL;
    PyObject *result = NULL;
    char *buf = NULL;

    Py_ssize_t instrument_len, venue_len;
    const char *instrument = utf8(PyTuple_GET_ITEM(book, 0), &instrument_len);
    if (instrument == NULL) {
        goto done;
    }
    double spread = PyFloat_AsDouble(PyTuple_GET_ITEM(book, 1));
    if (spread == -1.0 && PyErr_Occurred()) {
        goto done;
    }
    if (levels_prepare(&bids, PyTuple_GET_ITEM(book, 2)) < 0 ||
        levels_prepare(&asks, PyTuple_GET_ITEM(book, 3)) < 0) {
        goto done;
    }
    uint64_t sequence, recv_ns, publish_ns, send_ns, source_frame;
    if (wire_integer(PyTuple_GET_ITEM(book, 4), 0, "uint64", &sequence) < 0 ||
        wire_integer(PyTuple_GET_ITEM(book, 5), 1, "int64", &recv_ns) < 0 ||
        wire_integer(args[1], 1, "int64", &send_ns) < 0 ||
        wire_integer(PyTuple_GET_ITEM(book, 8), 0, "uint64", &source_frame) < 0) {
        goto done;
    }
    const char *venue = utf8(PyTuple_GET_ITEM(book, 7), &venue_len);
    if (venue == NULL) {
        goto done;
    }
    if (clock == Py_None) {
        if (wire_integer(PyTuple_GET_ITEM(book, 6), 1, "int64", &publish_ns) < 0) {
            goto done;
        }
    }
    else {
        PyObject *now = PyObject_CallNoArgs(clock);
        if (now == NULL) {
            goto done;
        }
        int bad = wire_integer(now, 1, "int64", &publish_ns);
        Py_DECREF(now);
        if (bad < 0) {
            goto done;
        }
    }
    /* An upper bound: keys, 10-byte varints, the strings and the levels. */
    size_t bound = 9 + bids.size + asks.size + 5 * 11 + 2 * 11 + (size_t)instrument_len +
                   (size_t)venue_len;
    buf = PyMem_Malloc(bound);
    if (buf == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    char *out = buf;
    if (!is_default_double(spread)) {
        out = write_double(out, SUMMARY_SPREAD, spread);
    }
    out = levels_write(out, SUMMARY_BIDS, &bids);
    out = levels_write(out, SUMMARY_ASKS, &asks);
    if (instrument_len > 0) {
        out = write_string(out, SUMMARY_INSTRUMENT, instrument, instrument_len);
    }
    if (sequence != 0) {
        out = write_integer(out, SUMMARY_SEQUENCE, sequence);
    }
    if (recv_ns != 0) {
        out = write_integer(out, SUMMARY_RECV_NS, recv_ns);
    }
    if (publish_ns != 0) {
        out = write_integer(out, SUMMARY_PUBLISH_NS, publish_ns);
    }
    if (send_ns != 0) {
        out = write_integer(out, SUMMARY_SEND_NS, send_ns);
    }
    if (venue_len > 0) {
        out = write_string(out, SUMMARY_SOURCE_VENUE, venue, venue_len);
    }
    if (source_frame != 0) {
        out = write_integer(out, SUMMARY_SOURCE_FRAME, source_frame);
    }
    result = PyBytes_FromStringAndSize(buf, out - buf);

done:
    PyMem_Free(buf);
    levels_release(&bids);
    levels_release(&asks);
    return result;
}

/* Powers of ten that a double holds exactly. */
static const double POW10[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/*
 * fix_entries(levels, entry_type, venues) -> (bytes, int) | None
 *     The MarketDataSnapshotFullRefresh (W) entries of one side of a merged
 *     book: for the n-th of `levels` (a tuple of MergedLevel tuples (venue,
 *     price, amount), best first) "269=<entry_type>\x01270=<price>\x01271=
 *     <amount>\x01<venues[venue]>290=<n>\x01", each float as repr writes
 *     it, and how many were written. `venues` maps a venue name to its
 *     "282=<name>\x01" field. None when a level is not one this writes
 *     exactly: a price or amount not a float in [1e-4, 1e16) (where repr
 *     never uses an exponent) or a venue not an exact str key of `venues`;
 *     then the Python encoder (dragonfly/fix/mdcodec.py, `_levels`, the twin
 *     of what this returns) writes the side; None too for `levels` not a
 *     tuple. TypeError for a level that is not a 3-tuple, or a field that
 *     is not bytes.
 */
#define FIX_PLAIN_LOW 1e-4
#define FIX_PLAIN_HIGH 1e16
/* Per entry, past the entry type and the venue's field: the tags, the
 * separators, two floats of at most 17 digits, a point and 4 zeros after
 * it (repr's plain form here), and the position's digits. */
#define FIX_ENTRY_FIXED (5 + 1 + 5 + 24 + 1 + 5 + 24 + 1 + 4 + 20 + 1)

static char *
write_decimal(char *out, size_t n)
{
    char digits[24];
    int i = 0;
    do {
        digits[i++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    while (i > 0) {
        *out++ = digits[--i];
    }
    return out;
}

/*
 * x (in [1e-4, 1e16)) as repr writes it, without repr's dtoa when a short
 * decimal is exact: for k = 0, 1, ... decimals, the integers c near x * 10^k
 * whose c / 10^k rounds back to x (a division of two exact doubles is
 * correctly rounded: it is the double strtod reads from that decimal). Every
 * such c is within 1 of m = nearbyint(x * 10^k) while x * 10^k < 2^53, so
 * m - 1, m and m + 1 are tried. The first k with exactly one is repr's
 * shortest decimal (no shorter one reads back as x); two at one k (repr then
 * picks the nearer, a tie dtoa settles) or no k below 2^53 take repr's dtoa.
 * Venue prices and sizes have a few decimals: ~4-9 tries against ~0.3-0.5 µs
 * of dtoa a float on this VM. scripts/fuzz_speedups.py checks it against
 * repr on random, decimal and boundary floats.
 */
#define TWO_53 9007199254740992.0

static char *
write_repr(char *out, double x)
{
    for (int k = 0; k < 18; k++) {
        double scaled = x * POW10[k];
        if (!(scaled < TWO_53)) {
            break;
        }
        double m = nearbyint(scaled);
        int found = 0;
        double hit = 0.0;
        for (int d = -1; d <= 1; d++) {
            double c = m + d;
            if (c >= 1.0 && c / POW10[k] == x) {
                found++;
                hit = c;
            }
        }
        if (found > 1) {
            break;
        }
        if (found == 1) {
            uint64_t digits = (uint64_t)hit;
            uint64_t scale = (uint64_t)POW10[k];
            out = write_decimal(out, (size_t)(digits / scale));
            *out++ = '.';
            if (k == 0) {
                *out++ = '0';
                return out;
            }
            uint64_t frac = digits % scale;
            for (int i = k - 1; i >= 0; i--) {
                out[i] = (char)('0' + frac % 10);
                frac /= 10;
            }
            return out + k;
        }
    }
    char *text = PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (text == NULL) {
        return NULL;
    }
    size_t len = strlen(text);
    memcpy(out, text, len);
    PyMem_Free(text);
    return out + len;
}

static PyObject *
fix_entries(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "fix_entries(levels, entry_type, venues)");
        return NULL;
    }
    PyObject *levels = args[0];
    if (!PyTuple_Check(levels)) {
        Py_RETURN_NONE; /* a side as a list (not what the merge makes): Python writes it */
    }
    if (!PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "entry_type must be bytes");
        return NULL;
    }
    if (!PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "venues must be a dict");
        return NULL;
    }
    /* Held: `levels` (a tuple: its items live while it does), the entry
     * type and the venue dict, across the venue lookups (which may run
     * Python code: a key's __eq__ on a hash collision). */
    levels = Py_NewRef(levels);
    PyObject *entry_type = Py_NewRef(args[1]);
    PyObject *venues = Py_NewRef(args[2]);
    PyObject *result = NULL;
    char *buf = NULL;
    const char *type_text = PyBytes_AS_STRING(entry_type);
    size_t type_len = (size_t)PyBytes_GET_SIZE(entry_type);
    Py_ssize_t count = PyTuple_GET_SIZE(levels);
    size_t cap = 256, used = 0;
    buf = PyMem_Malloc(cap);
    if (buf == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *level = PyTuple_GET_ITEM(levels, i);
        if (!PyTuple_Check(level) || PyTuple_GET_SIZE(level) != 3) {
            PyErr_SetString(PyExc_TypeError, "a level must be a (venue, price, amount) tuple");
            goto done;
        }
        PyObject *venue = PyTuple_GET_ITEM(level, 0);
        PyObject *price = PyTuple_GET_ITEM(level, 1);
        PyObject *amount = PyTuple_GET_ITEM(level, 2);
        if (!PyFloat_CheckExact(price) || !PyFloat_CheckExact(amount) || !PyUnicode_CheckExact(venue)) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        double p = PyFloat_AS_DOUBLE(price), a = PyFloat_AS_DOUBLE(amount);
        if (!(p >= FIX_PLAIN_LOW && p < FIX_PLAIN_HIGH && a >= FIX_PLAIN_LOW && a < FIX_PLAIN_HIGH)) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        /* An exact str key hashes and compares in C, but another key of the
         * dict may run Python code on a hash collision: hold the field. */
        PyObject *field = PyDict_GetItemWithError(venues, venue);
        if (field == NULL) {
            if (!PyErr_Occurred()) {
                result = Py_NewRef(Py_None);
            }
            goto done;
        }
        if (!PyBytes_Check(field)) {
            PyErr_SetString(PyExc_TypeError, "a venue's field must be bytes");
            goto done;
        }
        Py_INCREF(field);
        size_t field_len = (size_t)PyBytes_GET_SIZE(field);
        size_t need = used + type_len + field_len + FIX_ENTRY_FIXED;
        if (need > cap) {
            size_t grown = cap * 2 > need ? cap * 2 : need;
            char *bigger = PyMem_Realloc(buf, grown);
            if (bigger == NULL) {
                Py_DECREF(field);
                PyErr_NoMemory();
                goto done;
            }
            buf = bigger;
            cap = grown;
        }
        char *out = buf + used;
        memcpy(out, "269=", 4);
        out += 4;
        memcpy(out, type_text, type_len);
        out += type_len;
        memcpy(out, "\x01" "270=", 5);
        out += 5;
        out = write_repr(out, p);
        if (out == NULL) {
            Py_DECREF(field);
            goto done;
        }
        memcpy(out, "\x01" "271=", 5);
        out += 5;
        out = write_repr(out, a);
        if (out == NULL) {
            Py_DECREF(field);
            goto done;
        }
        *out++ = '\x01';
        memcpy(out, PyBytes_AS_STRING(field), field_len);
        out += field_len;
        Py_DECREF(field);
        memcpy(out, "290=", 4);
        out += 4;
        out = write_decimal(out, (size_t)i + 1);
        *out++ = '\x01';
        used = (size_t)(out - buf);
    }
    PyObject *text = PyBytes_FromStringAndSize(buf, (Py_ssize_t)used);
    if (text != NULL) {
        result = Py_BuildValue("(Nn)", text, count);
    }
done:
    PyMem_Free(buf);
    Py_DECREF(levels);
    Py_DECREF(entry_type);
    Py_DECREF(venues);
    return result;
}

/*
 * byte_sum(data) -> int
 *     The sum of the bytes of `data`, any C-contiguous buffer (FIX's
 *     CheckSum before its modulo 256). The twin is
 *     dragonfly/fix/codec.py's byte_sum_py (zlib's Adler-32, 256 bytes at a
 *     time). Anything without a C-contiguous buffer: TypeError or BufferError.
 */
static PyObject *
byte_sum(PyObject *module, PyObject *data)
{
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)view.buf;
    uint64_t total = 0;
    for (Py_ssize_t i = 0; i < view.len; i++) {
        total += p[i];
    }
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong((unsigned long long)total);
}

/*
 * read_levels(payload, start, depth) -> tuple | None
 *     The first `depth` levels of the JSON array at payload[start] ("["),
 *     in the compact form venues send: ["price","amount"] pairs of number
 *     strings, no whitespace. Returns ((price, amount), ...) as floats
 *     (Python's own correctly rounded conversion, as float() does), or None
 *     as soon as a byte is not of that form or a number is not finite: the
 *     caller then takes its general parser, which names the error. The bytes
 *     after the depth-th level are not read.
 */
#define MAX_NUMBER 64

/* Whether [p, q) is a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int
is_json_number(const char *p, const char *q)
{
#define DIGIT(c) ((c) >= '0' && (c) <= '9')
    if (p < q && *p == '-') {
        p++;
    }
    if (p >= q || !DIGIT(*p)) {
        return 0;
    }
    if (*p == '0') {
        p++;
    }
    else {
        while (p < q && DIGIT(*p)) {
            p++;
        }
    }
    if (p < q && *p == '.') {
        p++;
        if (p >= q || !DIGIT(*p)) {
            return 0;
        }
        while (p < q && DIGIT(*p)) {
            p++;
        }
    }
    if (p < q && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < q && (*p == '+' || *p == '-')) {
            p++;
        }
        if (p >= q || !DIGIT(*p)) {
            return 0;
        }
        while (p < q && DIGIT(*p)) {
            p++;
        }
    }
    return p == q;
#undef DIGIT
}

/*
 * The value of the JSON number [p, q) when it is -?digits[.digits] with at
 * most 15 significant digits and 22 decimals (every price and amount venues
 * send): 1 and *out set, else 0 (the caller takes Python's conversion).
 * Exact, not an approximation: the digits m < 10**15 < 2**53 and 10**k
 * (k <= 22) are both doubles exactly, so m / 10**k is one IEEE division,
 * correctly rounded, which is the correctly rounded decimal value that
 * float() returns (Clinger's fast path, also the first step of Python's
 * own strtod). ~10x cheaper here than PyOS_string_to_double, which parses
 * again and allocates.
 */
static int
fast_decimal(const char *p, const char *q, double *out)
{
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
    /* Doubles computed in wider registers (x87) could round twice: leave
     * every number to Python's conversion, which guards against that. */
    (void)p;
    (void)q;
    (void)out;
    return 0;
#endif
    uint64_t m = 0;
    int significant = 0;
    int decimals = -1; /* digits after the point; -1 before it */
    int negative = 0;
    if (p < q && *p == '-') {
        negative = 1;
        p++;
    }
    for (; p < q; p++) {
        char c = *p;
        if (c >= '0' && c <= '9') {
            if (m != 0 || c != '0') {
                if (++significant > 15) {
                    return 0;
                }
            }
            m = m * 10 + (uint64_t)(c - '0');
            if (decimals >= 0) {
                decimals++;
            }
        }
        else if (c == '.') {
            decimals = 0;
        }
        else {
            return 0; /* an exponent */
        }
    }
    if (decimals > 22) {
        return 0;
    }
    double x = (double)m;
    if (decimals > 0) {
        x /= POW10[decimals];
    }
    *out = negative ? -x : x;
    return 1;
}

/* A number string at p (after its opening quote): its closing quote, or NULL. */
static const char *
read_number(const char *p, const char *end, double *out)
{
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (q == NULL || q - p >= MAX_NUMBER || !is_json_number(p, q)) {
        return NULL;
    }
    if (fast_decimal(p, q, out)) {
        return q;
    }
    char buf[MAX_NUMBER];
    Py_ssize_t len = q - p;
    memcpy(buf, p, (size_t)len);
    buf[len] = '\0';
    char *stop = NULL;
    double x = PyOS_string_to_double(buf, &stop, NULL);
    if (x == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return NULL;
    }
    if (stop != buf + len || !isfinite(x)) {
        return NULL;
    }
    *out = x;
    return q;
}

static PyObject *
read_levels(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "read_levels(payload, start, depth)");
        return NULL;
    }
    if (!PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "payload must be bytes");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t depth = PyLong_AsSsize_t(args[2]);
    if (depth == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (depth < 0) {
        PyErr_SetString(PyExc_ValueError, "depth must not be negative");
        return NULL;
    }
    const char *data = PyBytes_AS_STRING(args[0]);
    const char *end = data + PyBytes_GET_SIZE(args[0]);
    if (start < 0 || start >= PyBytes_GET_SIZE(args[0]) || data[start] != '[') {
        Py_RETURN_NONE;
    }
    const char *p = data + start + 1;
    /* A level takes 9 bytes at least (["1","2"]), so the payload holds fewer
     * than this many: a larger depth reads exactly what this one reads, and
     * the buffers stay within ~2x the payload whatever depth the caller asks. */
    Py_ssize_t fits = (end - p) / 9 + 1;
    if (depth > fits) {
        depth = fits;
    }
    double prices[256], amounts[256];
    double *price = prices, *amount = amounts;
    if (depth > 256) {
        /* depth <= PY_SSIZE_T_MAX / 9 + 1: the size cannot wrap. */
        price = PyMem_Malloc((size_t)depth * 2 * sizeof(double));
        if (price == NULL) {
            return PyErr_NoMemory();
        }
        amount = price + depth;
    }
    Py_ssize_t n = 0;
    int ok = 0;
    if (depth == 0 || (p < end && *p == ']')) {
        ok = 1; /* nothing to read, or an empty side */
    }
    while (!ok && n < depth) {
        /* ["price","amount"] */
        if (end - p < 2 || p[0] != '[' || p[1] != '"') {
            break;
        }
        p = read_number(p + 2, end, &price[n]);
        if (p == NULL || end - p < 3 || p[1] != ',' || p[2] != '"') {
            break;
        }
        p = read_number(p + 3, end, &amount[n]);
        if (p == NULL || end - p < 3 || p[1] != ']') {
            break;
        }
        n++;
        if (p[2] == ']' || n == depth) {
            ok = p[2] == ']' || p[2] == ',';
            break;
        }
        if (p[2] != ',') {
            break;
        }
        p += 3;
    }
    PyObject *result = NULL;
    if (!ok) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    result = PyTuple_New(n);
    if (result == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *level = PyTuple_New(2);
        if (level == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyTuple_SET_ITEM(result, i, level);
        PyObject *x = PyFloat_FromDouble(price[i]);
        PyObject *y = x == NULL ? NULL : PyFloat_FromDouble(amount[i]);
        if (y == NULL) {
            Py_XDECREF(x);
            Py_CLEAR(result); /* frees the half-built level too */
            goto done;
        }
        PyTuple_SET_ITEM(level, 0, x);
        PyTuple_SET_ITEM(level, 1, y);
    }
done:
    if (price != prices) {
        PyMem_Free(price);
    }
    return result;
}

/*
 * read_bybit_delta(payload) -> (symbol, bids, asks, u, u, None) | None
 *     The fields of a Bybit v5 order book delta, as dragonfly.venues.bybit's
 *     msgspec decoder gives them (levels as lists of (price, amount) float
 *     tuples), for the one shape Bybit sends, byte for byte:
 *
 *       {"topic":"orderbook.<name>","type":"delta","ts":<digits>,
 *        "data":{"s":"<name>","b":<side>,"a":<side>,"u":<digits>,"seq":<digits>},"cts":<digits>}
 *
 *     no whitespace, "ts", "seq" and "cts" each optional, a <name> printable
 *     ASCII without '"' or '\', a <side> [["<price>","<amount>"],...] whose
 *     numbers are plain decimals (digits, one optional '.', at most 15
 *     significant digits and 22 decimals: fast_decimal's exact case) with a
 *     price above zero. Anything else, a snapshot too, is None: the caller
 *     decodes it with msgspec, which also says what is wrong with a bad frame.
 *     So this accepts nothing msgspec would refuse and reads what it accepts
 *     to the same values (scripts/fuzz_speedups.py compares the two). ~3x
 *     fewer instructions than msgspec's typed decode here (callgrind), which
 *     builds two Structs and converts strings it then drops.
 */

/* Match the literal `lit` at *p: 1 and *p moved past it, else 0. */
static int
expect(const char **p, const char *end, const char *lit, size_t n)
{
    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0) {
        return 0;
    }
    *p += n;
    return 1;
}
#define EXPECT(p, end, lit) expect(&(p), (end), (lit), sizeof(lit) - 1)

/* A name's characters at p up to its closing quote: the quote, or NULL. */
static const char *
name_end(const char *p, const char *end)
{
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            return p;
        }
        if (c < 0x20 || c > 0x7e || c == '\\') {
            return NULL;
        }
    }
    return NULL;
}

/* 1..18 digits at *p, no leading zero but "0": 1, *out and *p moved; else 0. */
static int
read_digits(const char **p, const char *end, long long *out)
{
    const char *q = *p;
    long long v = 0;
    while (q < end && *q >= '0' && *q <= '9' && q - *p < 18) {
        v = v * 10 + (*q - '0');
        q++;
    }
    Py_ssize_t n = q - *p;
    if (n == 0 || (q < end && *q >= '0' && *q <= '9') || (n > 1 && **p == '0')) {
        return 0;
    }
    *p = q;
    *out = v;
    return 1;
}

/* A plain decimal string's value, the quote after it at *p: 1, else 0.
 * One pass doing what is_json_number (digits, no leading zero, one '.' with
 * digits after it; no sign, no exponent here) then fast_decimal (at most 15
 * significant digits and 22 decimals, one exact division) do in two. */
static int
read_plain(const char **p, const char *end, double *out)
{
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
    (void)p;
    (void)end;
    (void)out;
    return 0; /* as fast_decimal: leave it to the exact conversion */
#endif
#define DIGIT(c) ((c) >= '0' && (c) <= '9')
    const char *q = *p;
    if (q >= end || !DIGIT(*q) || (*q == '0' && q + 1 < end && DIGIT(q[1]))) {
        return 0;
    }
    uint64_t m = 0;
    int significant = 0;
    int decimals = -1;
    for (; q < end; q++) {
        char c = *q;
        if (DIGIT(c)) {
            if ((m != 0 || c != '0') && ++significant > 15) {
                return 0;
            }
            m = m * 10 + (uint64_t)(c - '0');
            if (decimals >= 0 && ++decimals > 22) {
                return 0;
            }
        }
        else if (c == '.' && decimals < 0 && q + 1 < end && DIGIT(q[1])) {
            decimals = 0;
        }
        else {
            break;
        }
    }
#undef DIGIT
    if (q >= end || *q != '"') {
        return 0;
    }
    double x = (double)m;
    if (decimals > 0) {
        x /= POW10[decimals];
    }
    *out = x;
    *p = q;
    return 1;
}

/* A side [["p","q"],...] at *p into a new list: the list and *p moved past
 * it; NULL without an exception when it is not that shape; NULL with one on
 * error. */
static PyObject *
read_side(const char **p, const char *end)
{
    const char *q = *p;
    if (!EXPECT(q, end, "[")) {
        return NULL;
    }
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    if (EXPECT(q, end, "]")) {
        *p = q;
        return list;
    }
    for (;;) {
        double price, amount;
        if (!EXPECT(q, end, "[\"") || !read_plain(&q, end, &price) || !(price > 0.0)
            || !EXPECT(q, end, "\",\"") || !read_plain(&q, end, &amount) || !EXPECT(q, end, "\"]")) {
            Py_DECREF(list);
            return NULL;
        }
        PyObject *level = PyTuple_New(2);
        PyObject *x = level == NULL ? NULL : PyFloat_FromDouble(price);
        PyObject *y = x == NULL ? NULL : PyFloat_FromDouble(amount);
        if (y == NULL) {
            Py_XDECREF(x);
            Py_XDECREF(level);
            Py_DECREF(list);
            return NULL;
        }
        PyTuple_SET_ITEM(level, 0, x);
        PyTuple_SET_ITEM(level, 1, y);
        int rc = PyList_Append(list, level);
        Py_DECREF(level);
        if (rc < 0) {
            Py_DECREF(list);
            return NULL;
        }
        if (EXPECT(q, end, "]")) {
            *p = q;
            return list;
        }
        if (!EXPECT(q, end, ",")) {
            Py_DECREF(list);
            return NULL;
        }
    }
}

static PyObject *
read_bybit_delta(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "payload must be bytes");
        return NULL;
    }
    const char *p = PyBytes_AS_STRING(arg);
    const char *end = p + PyBytes_GET_SIZE(arg);
    long long number;
    if (!EXPECT(p, end, "{\"topic\":\"orderbook.") || (p = name_end(p, end)) == NULL
        || !EXPECT(p, end, "\",\"type\":\"delta\",")) {
        Py_RETURN_NONE;
    }
    if (EXPECT(p, end, "\"ts\":") && !(read_digits(&p, end, &number) && EXPECT(p, end, ","))) {
        Py_RETURN_NONE;
    }
    if (!EXPECT(p, end, "\"data\":{\"s\":\"")) {
        Py_RETURN_NONE;
    }
    const char *symbol = p;
    if ((p = name_end(p, end)) == NULL) {
        Py_RETURN_NONE;
    }
    Py_ssize_t symbol_len = p - symbol;
    if (!EXPECT(p, end, "\",\"b\":")) {
        Py_RETURN_NONE;
    }
    PyObject *bids = read_side(&p, end);
    if (bids == NULL) {
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    PyObject *asks = NULL;
    if (EXPECT(p, end, ",\"a\":")) {
        asks = read_side(&p, end);
    }
    if (asks == NULL) {
        Py_DECREF(bids);
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    long long u;
    int ok = EXPECT(p, end, ",\"u\":") && read_digits(&p, end, &u);
    if (ok && EXPECT(p, end, ",\"seq\":")) {
        ok = read_digits(&p, end, &number);
    }
    ok = ok && EXPECT(p, end, "}");
    if (ok && EXPECT(p, end, ",\"cts\":")) {
        ok = read_digits(&p, end, &number);
    }
    ok = ok && EXPECT(p, end, "}") && p == end;
    if (!ok) {
        Py_DECREF(bids);
        Py_DECREF(asks);
        Py_RETURN_NONE;
    }
    PyObject *name = PyUnicode_DecodeASCII(symbol, symbol_len, NULL);
    PyObject *seq = name == NULL ? NULL : PyLong_FromLongLong(u);
    PyObject *out = seq == NULL ? NULL : PyTuple_New(6);
    if (out == NULL) {
        Py_XDECREF(name);
        Py_XDECREF(seq);
        Py_DECREF(bids);
        Py_DECREF(asks);
        return NULL;
    }
    PyTuple_SET_ITEM(out, 0, name);
    PyTuple_SET_ITEM(out, 1, bids);
    PyTuple_SET_ITEM(out, 2, asks);
    PyTuple_SET_ITEM(out, 3, Py_NewRef(seq));
    PyTuple_SET_ITEM(out, 4, seq);
    PyTuple_SET_ITEM(out, 5, Py_NewRef(Py_None));
    return out;
}
#undef EXPECT

/*
 * check_book(bids, asks) -> str | None
 *     Why a venue's top-N book cannot be trusted, or None: the C twin of
 *     dragonfly.core.listener.check_book_py (same checks, same messages).
 */
/* Check one side; sets *problem on a bad level, *best to its first price
 * (NAN when empty). -1 with an exception set when a level is not a pair of
 * numbers. */
static int
check_side(PyObject *side, int bids, const char **problem, double *best)
{
    /* A tuple (what the decoders give) is not copied; a list is, so that a
     * level's __float__ cannot free the levels still to be read. */
    PyObject *seq = tuple_snapshot(side, "a side must be a sequence");
    if (seq == NULL) {
        return -1;
    }
    double prev = bids ? INFINITY : 0.0;
    *best = NAN;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *level = PyTuple_GET_ITEM(seq, i);
        if (!PyTuple_Check(level) || PyTuple_GET_SIZE(level) != 2) {
            PyErr_SetString(PyExc_TypeError, "a level must be a (price, amount) tuple");
            Py_DECREF(seq);
            return -1;
        }
        double price = PyFloat_AsDouble(PyTuple_GET_ITEM(level, 0));
        if (price == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        double amount = PyFloat_AsDouble(PyTuple_GET_ITEM(level, 1));
        if (amount == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        if (i == 0) {
            *best = price;
        }
        int in_order = bids ? (0.0 < price && price < prev) : (prev < price && price < INFINITY);
        if (!in_order || !(0.0 < amount && amount < INFINITY)) {
            *problem = bids ? "bids out of order or not positive finite"
                            : "asks out of order or not positive finite";
            break;
        }
        prev = price;
    }
    Py_DECREF(seq);
    return 0;
}

static PyObject *
check_book(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "check_book(bids, asks)");
        return NULL;
    }
    const char *problem = NULL;
    double best_bid, best_ask;
    if (check_side(args[0], 1, &problem, &best_bid) < 0) {
        return NULL;
    }
    if (problem == NULL) {
        if (check_side(args[1], 0, &problem, &best_ask) < 0) {
            return NULL;
        }
        /* NAN (an empty side) compares false: no cross. */
        if (problem == NULL && best_bid >= best_ask) {
            problem = "venue book is crossed";
        }
    }
    if (problem == NULL) {
        Py_RETURN_NONE;
    }
    return PyUnicode_FromString(problem);
}

/*
 * apply_side(side, levels, bids, bound) -> bool
 *     One side of dragonfly.core.book.L2Book.update_numeric: apply float
 *     (price, amount) tuples to `side`, a SortedDict keyed by price (by
 *     -price for bids); amount 0 removes the level. Existing levels are
 *     replaced with dict.__setitem__ (their key does not move), new ones go
 *     through the SortedDict. Returns whether a level reached `bound` (at or
 *     above it for bids, at or below for asks). A level that is not a
 *     2-tuple of numbers raises TypeError.
 *
 * top_levels(side, n) -> tuple
 *     The values of the first `n` keys of the SortedDict `side`, in order
 *     (L2Book.top_bids / top_asks), read through its internal sorted key
 *     lists, as dragonfly.core.book._head does.
 */
static PyObject *
interned(PyObject **slot, const char *text)
{
    if (*slot == NULL) {
        *slot = PyUnicode_InternFromString(text);
    }
    return *slot;
}

static PyObject *str_pop, *str_list, *str_lists;

/*
 * The sorted keys of a SortedDict, changed in C (apply_side, apply_text_side).
 *
 * sortedcontainers 2.x keeps a SortedDict's keys in a SortedList: sublists
 * `_lists` of at most 2 * `_load` keys each, their last keys in `_maxes`, a
 * positional index `_index` built lazily (emptied whenever it would go out
 * of date), and the count `_len`. Adding or removing a price through
 * `SortedDict.__setitem__` / `pop` runs ~6 Python frames (~1 µs a level
 * here); the common case, a sublist that neither splits nor merges, is a
 * bisect and one list insert or delete, done here without calling Python.
 * Anything else (a split, a merge, the first key, a key or maximum that is
 * not a float, a layout this code does not know) returns 0 before changing
 * anything, and the caller takes the SortedDict's own method, so the lists
 * end exactly as sortedcontainers' own code leaves them:
 * tests/core/test_accel.py compares the internal lists with the Python
 * book's. The index is emptied rather than updated (sortedcontainers
 * rebuilds it when a positional read needs it, as after a split).
 */
typedef struct {
    PyObject *side;  /* borrowed from the caller's arguments; NULL once opened */
    PyObject *sl;    /* the SortedList (held), or NULL: no fast path */
    PyObject *lists; /* held */
    PyObject *maxes; /* held */
    PyObject *index; /* held */
    Py_ssize_t load;
    Py_ssize_t delta; /* keys added less keys removed, not yet in _len */
} Keys;

static PyObject *str_len_, *str_load, *str_maxes, *str_index;
static PyObject *sorted_dict_type, *sorted_list_type; /* held for the module's life */

static int
sorted_types(void)
{
    if (sorted_dict_type != NULL) {
        return 0;
    }
    PyObject *mod = PyImport_ImportModule("sortedcontainers");
    if (mod == NULL) {
        return -1;
    }
    PyObject *d = PyObject_GetAttrString(mod, "SortedDict");
    PyObject *l = d == NULL ? NULL : PyObject_GetAttrString(mod, "SortedList");
    Py_DECREF(mod);
    if (l == NULL) {
        Py_XDECREF(d);
        return -1;
    }
    sorted_dict_type = d;
    sorted_list_type = l;
    return 0;
}

/* Prepare to open `side`'s key lists when a key is first added or removed
 * (most updates only change amounts: they need no lists). */
static void
keys_init(PyObject *side, Keys *k)
{
    memset(k, 0, sizeof *k);
    k->side = side;
}

/* Open the key lists for the fast path (k->sl NULL: not usable); -1 on error. */
static int
keys_open(Keys *k)
{
    PyObject *side = k->side;
    memset(k, 0, sizeof *k);
    if (interned(&str_pop, "pop") == NULL || interned(&str_list, "_list") == NULL
        || interned(&str_lists, "_lists") == NULL
        || interned(&str_len_, "_len") == NULL || interned(&str_load, "_load") == NULL
        || interned(&str_maxes, "_maxes") == NULL || interned(&str_index, "_index") == NULL) {
        return -1;
    }
    if (sorted_types() < 0) {
        return -1;
    }
    /* Exactly sortedcontainers' classes: a subclass may override the methods
     * this would bypass. */
    if ((PyObject *)Py_TYPE(side) != sorted_dict_type) {
        return 0;
    }
    PyObject *sl = PyObject_GetAttr(side, str_list);
    if (sl == NULL) {
        PyErr_Clear();
        return 0;
    }
    if ((PyObject *)Py_TYPE(sl) != sorted_list_type) {
        Py_DECREF(sl);
        return 0;
    }
    PyObject *load = PyObject_GetAttr(sl, str_load);
    k->lists = PyObject_GetAttr(sl, str_lists);
    k->maxes = PyObject_GetAttr(sl, str_maxes);
    k->index = PyObject_GetAttr(sl, str_index);
    Py_ssize_t n = -1;
    if (load != NULL && PyLong_CheckExact(load)) {
        n = PyLong_AsSsize_t(load);
    }
    Py_XDECREF(load);
    PyErr_Clear();
    if (k->lists == NULL || k->maxes == NULL || k->index == NULL || !PyList_CheckExact(k->lists)
        || !PyList_CheckExact(k->maxes) || !PyList_CheckExact(k->index) || n < 1
        || n > PY_SSIZE_T_MAX / 4) {
        Py_XDECREF(k->lists);
        Py_XDECREF(k->maxes);
        Py_XDECREF(k->index);
        Py_DECREF(sl);
        memset(k, 0, sizeof *k);
        return 0;
    }
    k->sl = sl;
    k->load = n;
    return 0;
}

/* Add the keys' count change to `_len` and let go of the lists; -1 on error
 * (an exception already set is kept). */
static int
keys_close(Keys *k)
{
    int rc = 0;
    if (k->sl != NULL && k->delta != 0) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyObject *len = PyObject_GetAttr(k->sl, str_len_);
        PyObject *d = len == NULL ? NULL : PyLong_FromSsize_t(k->delta);
        PyObject *sum = d == NULL ? NULL : PyNumber_Add(len, d);
        rc = sum == NULL ? -1 : PyObject_SetAttr(k->sl, str_len_, sum);
        Py_XDECREF(len);
        Py_XDECREF(d);
        Py_XDECREF(sum);
        if (type != NULL) {
            PyErr_Restore(type, value, tb); /* the first error wins */
        }
    }
    Py_XDECREF(k->sl);
    Py_XDECREF(k->lists);
    Py_XDECREF(k->maxes);
    Py_XDECREF(k->index);
    memset(k, 0, sizeof *k);
    return rc;
}

/* First i in [0, n) of float list `list` with list[i] > x (right) or >= x
 * (left), as bisect does; -1: an item it compared is not a float. */
static Py_ssize_t
keys_bisect(PyObject *list, double x, int right)
{
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(list);
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        PyObject *item = PyList_GET_ITEM(list, mid);
        if (!PyFloat_CheckExact(item)) {
            return -1;
        }
        double y = PyFloat_AS_DOUBLE(item);
        if (right ? x < y : y >= x) {
            hi = mid;
        }
        else {
            lo = mid + 1;
        }
    }
    return lo;
}

static int
keys_unindex(Keys *k)
{
    Py_ssize_t n = PyList_GET_SIZE(k->index);
    return n ? PyList_SetSlice(k->index, 0, n, NULL) : 0;
}

/* SortedList.add(key) for a float key not yet in it: 1 done, 0 not on the
 * fast path (nothing changed), -1 on error. Calls no Python code. */
static int
keys_add(Keys *k, PyObject *key)
{
    if (k->side != NULL && keys_open(k) < 0) {
        return -1;
    }
    if (k->sl == NULL || !PyFloat_CheckExact(key)) {
        return 0;
    }
    double x = PyFloat_AS_DOUBLE(key);
    Py_ssize_t nm = PyList_GET_SIZE(k->maxes);
    if (nm == 0 || PyList_GET_SIZE(k->lists) != nm) {
        return 0;
    }
    Py_ssize_t pos = keys_bisect(k->maxes, x, 1);
    if (pos < 0) {
        return 0;
    }
    int last = pos == nm;
    if (last) {
        pos = nm - 1;
    }
    PyObject *sub = PyList_GET_ITEM(k->lists, pos);
    if (!PyList_CheckExact(sub) || PyList_GET_SIZE(sub) + 1 > (k->load << 1)) {
        return 0; /* the sublist splits */
    }
    Py_ssize_t at = last ? PyList_GET_SIZE(sub) : keys_bisect(sub, x, 1);
    if (at < 0) {
        return 0;
    }
    if (PyList_Insert(sub, at, key) < 0) {
        return -1;
    }
    if (last && PyList_SetItem(k->maxes, pos, Py_NewRef(key)) < 0) {
        return -1;
    }
    k->delta++;
    return keys_unindex(k) < 0 ? -1 : 1;
}

/* SortedList.remove(key) for a float key in it: 1 done, 0 not on the fast
 * path (nothing changed), -1 on error. Calls no Python code. */
static int
keys_remove(Keys *k, PyObject *key)
{
    if (k->side != NULL && keys_open(k) < 0) {
        return -1;
    }
    if (k->sl == NULL || !PyFloat_CheckExact(key)) {
        return 0;
    }
    double x = PyFloat_AS_DOUBLE(key);
    Py_ssize_t nm = PyList_GET_SIZE(k->maxes);
    if (nm == 0 || PyList_GET_SIZE(k->lists) != nm) {
        return 0;
    }
    Py_ssize_t pos = keys_bisect(k->maxes, x, 0);
    if (pos < 0 || pos == nm) {
        return 0;
    }
    PyObject *sub = PyList_GET_ITEM(k->lists, pos);
    if (!PyList_CheckExact(sub)) {
        return 0;
    }
    Py_ssize_t n = PyList_GET_SIZE(sub);
    Py_ssize_t at = keys_bisect(sub, x, 0);
    if (at < 0 || at == n || !PyFloat_CheckExact(PyList_GET_ITEM(sub, at))
        || PyFloat_AS_DOUBLE(PyList_GET_ITEM(sub, at)) != x) {
        return 0;
    }
    /* SortedList._delete merges a sublist left with half the load or less
     * (unless it is the only one), and drops an empty one. */
    if (!(n - 1 > (k->load >> 1) || (nm == 1 && n - 1 > 0))) {
        return 0;
    }
    if (PyList_SetSlice(sub, at, at + 1, NULL) < 0) {
        return -1;
    }
    PyObject *top = PyList_GET_ITEM(sub, PyList_GET_SIZE(sub) - 1);
    if (PyList_SetItem(k->maxes, pos, Py_NewRef(top)) < 0) {
        return -1;
    }
    k->delta--;
    return keys_unindex(k) < 0 ? -1 : 1;
}

/*
 * A price key's hash, computed once per level: a level touches the side and
 * the strings dict with the same key up to four times, and Python's float
 * hash (frexp) is most of a dict operation's cost here (callgrind, OKX
 * updates: ~15% of the instructions a message). Only for an exact float (its
 * hash is C and cannot change); -1 (unknown) otherwise, and the plain calls
 * run. The *_KnownHash calls are CPython's own, exported through 3.12.
 */
#if PY_VERSION_HEX < 0x030D0000
#define KNOWN_HASH 1
#else
#define KNOWN_HASH 0
#endif

static Py_hash_t
key_hash(PyObject *key)
{
    return KNOWN_HASH && PyFloat_CheckExact(key) ? PyObject_Hash(key) : -1;
}

static int
dict_contains(PyObject *d, PyObject *key, Py_hash_t h)
{
#if KNOWN_HASH
    if (h != -1) {
        return _PyDict_Contains_KnownHash(d, key, h);
    }
#endif
    return PyDict_Contains(d, key);
}

static int
dict_set(PyObject *d, PyObject *key, PyObject *value, Py_hash_t h)
{
#if KNOWN_HASH
    if (h != -1) {
        return _PyDict_SetItem_KnownHash(d, key, value, h);
    }
#endif
    return PyDict_SetItem(d, key, value);
}

static int
dict_del(PyObject *d, PyObject *key, Py_hash_t h)
{
#if KNOWN_HASH
    if (h != -1) {
        return _PyDict_DelItem_KnownHash(d, key, h);
    }
#endif
    return PyDict_DelItem(d, key);
}

/* side[key] = value for a key not in side: the fast path, else __setitem__. */
static int
side_add(Keys *k, PyObject *side, PyObject *key, PyObject *value, Py_hash_t h)
{
    int fast = keys_add(k, key);
    if (fast < 0) {
        return -1;
    }
    return fast ? dict_set(side, key, value, h) : PyObject_SetItem(side, key, value);
}

/* side.pop(key) for a key in side: the fast path, else the method. */
static int
side_remove(Keys *k, PyObject *side, PyObject *key, Py_hash_t h)
{
    int fast = keys_remove(k, key);
    if (fast < 0) {
        return -1;
    }
    if (fast) {
        return dict_del(side, key, h);
    }
    PyObject *gone = PyObject_CallMethodOneArg(side, str_pop, key);
    Py_XDECREF(gone);
    return gone == NULL ? -1 : 0;
}


/* The levels of apply_side onto `side` (checked a dict by the caller); sets
 * *hit to 1 when a level reached `bound`. 0, or -1 with an exception (the
 * levels before the bad one stay applied, as in the Python loop). */
static int
apply_float_levels(PyObject *side, PyObject *levels, int bids, double bound, int *hit)
{
    PyObject *seq = PySequence_Fast(levels, "levels must be a sequence");
    if (seq == NULL) {
        return -1;
    }
    Keys keys;
    keys_init(side, &keys);
    /* The SortedDict's methods, a key's __hash__ and a level's __float__ are
     * Python code that may change a `levels` list: its size is read at each
     * step, and the level in hand is held (it owns its price and amount). */
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *level = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i));
        PyObject *key = NULL;
        int rc = -1;
        if (!PyTuple_Check(level) || PyTuple_GET_SIZE(level) != 2) {
            PyErr_SetString(PyExc_TypeError, "a level must be a (price, amount) tuple");
            goto next;
        }
        PyObject *price = PyTuple_GET_ITEM(level, 0);
        double value = PyFloat_AsDouble(price);
        if (value == -1.0 && PyErr_Occurred()) {
            goto next;
        }
        double qty = PyFloat_AsDouble(PyTuple_GET_ITEM(level, 1));
        if (qty == -1.0 && PyErr_Occurred()) {
            goto next;
        }
        key = bids ? PyFloat_FromDouble(-value) : Py_NewRef(price);
        if (key == NULL) {
            goto next;
        }
        Py_hash_t h = key_hash(key);
        int present = dict_contains(side, key, h);
        if (present < 0) {
            goto next;
        }
        if (qty == 0.0) {
            rc = 0;
            if (present) {
                rc = side_remove(&keys, side, key, h);
            }
        }
        else if (present) {
            rc = dict_set(side, key, level, h);
        }
        else {
            rc = side_add(&keys, side, key, level, h);
        }
        if (rc == 0 && (bids ? value >= bound : value <= bound)) {
            *hit = 1;
        }
    next:
        Py_XDECREF(key);
        Py_DECREF(level);
        if (rc < 0) {
            keys_close(&keys);
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return keys_close(&keys);
}

static PyObject *
apply_side(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "apply_side(side, levels, bids, bound)");
        return NULL;
    }
    PyObject *side = args[0];
    if (!PyDict_Check(side)) {
        PyErr_SetString(PyExc_TypeError, "side must be a SortedDict");
        return NULL;
    }
    int bids = PyObject_IsTrue(args[2]);
    if (bids < 0) {
        return NULL;
    }
    double bound = PyFloat_AsDouble(args[3]);
    if (bound == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    int hit = 0;
    if (apply_float_levels(side, args[1], bids, bound, &hit) < 0) {
        return NULL;
    }
    return PyBool_FromLong(hit);
}

/*
 * apply_book(bid_side, ask_side, bids, asks, bid_floor, ask_ceiling) -> int
 *     The whole of dragonfly.core.book.L2Book.update_numeric in one call:
 *     apply_side on the bids (keyed by -price), then on the asks; returns 1
 *     (BIDS) if a bid reached bid_floor, plus 2 (ASKS) if an ask reached
 *     ask_ceiling. A diff listener binds a book's two sides to it once
 *     (L2Book.numeric_updater), so a delta runs no Python frame of the
 *     book's. An error in the bids leaves the asks untouched, as the Python
 *     loops do.
 */
static PyObject *
apply_book(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "apply_book(bid_side, ask_side, bids, asks, bid_floor, ask_ceiling)");
        return NULL;
    }
    if (!PyDict_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "the sides must be SortedDicts");
        return NULL;
    }
    double floor = PyFloat_AsDouble(args[4]);
    if (floor == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    double ceiling = PyFloat_AsDouble(args[5]);
    if (ceiling == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    int bid_hit = 0, ask_hit = 0;
    if (apply_float_levels(args[0], args[2], 1, floor, &bid_hit) < 0
        || apply_float_levels(args[1], args[3], 0, ceiling, &ask_hit) < 0) {
        return NULL;
    }
    return PyLong_FromLong(bid_hit | (ask_hit << 1));
}


/*
 * apply_text_side(side, text, levels, bids, bound) -> bool
 *     One side of dragonfly.core.book.L2Book.update (a book that keeps the
 *     venue's strings): each level a tuple or list of str whose first two
 *     items are its price and amount (venues send more: a timestamp, an
 *     order count; the rest is not read), converted as float() converts
 *     them, checked (a price above
 *     zero and finite, an amount not negative and finite: else ValueError,
 *     as the Python loop words it). Amount 0 removes the level from `side`
 *     (a SortedDict keyed by price, by -price for bids: values (price,
 *     amount) floats) and from `text` (a dict, same keys: values the pair of
 *     strings); else both are set. Returns whether a level reached `bound`.
 *     Levels before a bad one stay applied, as in the Python loop.
 */

/* float(s) for a str s: 0, or -1 with float()'s own exception. */
static int
text_to_double(PyObject *s, double *out)
{
    Py_ssize_t len;
    const char *p = PyUnicode_AsUTF8AndSize(s, &len);
    if (p == NULL) {
        PyErr_Clear(); /* a lone surrogate: float() says what is wrong */
    }
    else if (len < MAX_NUMBER && is_json_number(p, p + len) && fast_decimal(p, p + len, out)) {
        return 0;
    }
    PyObject *f = PyFloat_FromString(s);
    if (f == NULL) {
        return -1;
    }
    *out = PyFloat_AS_DOUBLE(f);
    Py_DECREF(f);
    return 0;
}

static void
out_of_range(PyObject *price, PyObject *amount)
{
    PyObject *reprs[2] = {PyObject_Repr(price), NULL};
    reprs[1] = reprs[0] == NULL ? NULL : PyObject_Repr(amount);
    if (reprs[1] != NULL) {
        PyObject *p = PyUnicode_Substring(reprs[0], 0, 40);
        PyObject *a = p == NULL ? NULL : PyUnicode_Substring(reprs[1], 0, 40);
        if (a != NULL) {
            PyErr_Format(PyExc_ValueError, "level out of range: price %U, amount %U", p, a);
        }
        Py_XDECREF(p);
        Py_XDECREF(a);
    }
    Py_XDECREF(reprs[0]);
    Py_XDECREF(reprs[1]);
}

static PyObject *
apply_text_side(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "apply_text_side(side, text, levels, bids, bound)");
        return NULL;
    }
    PyObject *side = args[0];
    PyObject *text = args[1];
    if (!PyDict_Check(side) || !PyDict_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "side must be a SortedDict and text a dict");
        return NULL;
    }
    int bids = PyObject_IsTrue(args[3]);
    if (bids < 0) {
        return NULL;
    }
    double bound = PyFloat_AsDouble(args[4]);
    if (bound == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[2], "levels must be a sequence");
    if (seq == NULL) {
        return NULL;
    }
    Keys keys;
    keys_init(side, &keys);
    int hit = 0;
    int rc = 0;
    /* As in apply_side: sizes read at each step, the level in hand held, and
     * its price and amount too (a list level could change under us). */
    for (Py_ssize_t i = 0; rc == 0 && i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *level = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i));
        PyObject *price = NULL, *amount = NULL;
        PyObject *value = NULL, *qty = NULL, *key = NULL, *pair = NULL;
        rc = -1;
        if ((PyTuple_Check(level) || PyList_Check(level)) && Py_SIZE(level) >= 2) {
            PyObject **items = PyTuple_Check(level) ? &PyTuple_GET_ITEM(level, 0) : &PyList_GET_ITEM(level, 0);
            price = Py_NewRef(items[0]);
            amount = Py_NewRef(items[1]);
        }
        if (price == NULL || !PyUnicode_CheckExact(price) || !PyUnicode_CheckExact(amount)) {
            PyErr_SetString(PyExc_TypeError, "a level must be a (price, amount, ...) sequence of str");
            goto next;
        }
        double p, q;
        if (text_to_double(amount, &q) < 0 || text_to_double(price, &p) < 0) {
            goto next;
        }
        if (!(0.0 < p && p < INFINITY && 0.0 <= q && q < INFINITY)) {
            out_of_range(price, amount);
            goto next;
        }
        value = PyFloat_FromDouble(p);
        key = value == NULL ? NULL : (bids ? PyFloat_FromDouble(-p) : Py_NewRef(value));
        if (key == NULL) {
            goto next;
        }
        Py_hash_t h = key_hash(key);
        int present = dict_contains(side, key, h);
        if (present < 0) {
            goto next;
        }
        if (q == 0.0) {
            if (present && (side_remove(&keys, side, key, h) < 0 || dict_del(text, key, h) < 0)) {
                goto next;
            }
        }
        else {
            qty = PyFloat_FromDouble(q);
            pair = qty == NULL ? NULL : PyTuple_Pack(2, value, qty);
            if (pair == NULL) {
                goto next;
            }
            if (present ? dict_set(side, key, pair, h) < 0 : side_add(&keys, side, key, pair, h) < 0) {
                goto next;
            }
            PyObject *strings = PyTuple_CheckExact(level) && PyTuple_GET_SIZE(level) == 2
                                    ? Py_NewRef(level)
                                    : PyTuple_Pack(2, price, amount);
            int set = strings == NULL ? -1 : dict_set(text, key, strings, h);
            Py_XDECREF(strings);
            if (set < 0) {
                goto next;
            }
        }
        if (bids ? p >= bound : p <= bound) {
            hit = 1;
        }
        rc = 0;
    next:
        Py_XDECREF(pair);
        Py_XDECREF(qty);
        Py_XDECREF(key);
        Py_XDECREF(value);
        Py_XDECREF(price);
        Py_XDECREF(amount);
        Py_DECREF(level);
    }
    Py_DECREF(seq);
    if (keys_close(&keys) < 0 || rc < 0) {
        return NULL;
    }
    return PyBool_FromLong(hit);
}

static PyObject *
top_levels(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 && nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "top_levels(side, n, values=None)");
        return NULL;
    }
    PyObject *side = args[0];
    if (!PyDict_Check(side)) {
        PyErr_SetString(PyExc_TypeError, "side must be a SortedDict");
        return NULL;
    }
    /* Where the values are read: the side itself, or a dict with its keys. */
    PyObject *values = nargs == 3 && args[2] != Py_None ? args[2] : side;
    if (!PyDict_Check(values)) {
        PyErr_SetString(PyExc_TypeError, "values must be a dict");
        return NULL;
    }
    Py_ssize_t n = PyLong_AsSsize_t(args[1]);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "n must not be negative");
        return NULL;
    }
    PyObject *name_list = interned(&str_list, "_list");
    PyObject *name_lists = interned(&str_lists, "_lists");
    if (name_list == NULL || name_lists == NULL) {
        return NULL;
    }
    PyObject *sorted_keys = PyObject_GetAttr(side, name_list);
    if (sorted_keys == NULL) {
        return NULL;
    }
    PyObject *lists = PyObject_GetAttr(sorted_keys, name_lists);
    Py_DECREF(sorted_keys);
    if (lists == NULL) {
        return NULL;
    }
    PyObject *out = NULL;
    if (!PyList_Check(lists)) {
        PyErr_SetString(PyExc_TypeError, "side must be a SortedDict");
        goto done;
    }
    Py_ssize_t total = PyDict_GET_SIZE(side);
    Py_ssize_t k = n < total ? n : total;
    out = PyTuple_New(k);
    if (out == NULL) {
        goto done;
    }
    /* A key's __hash__ or __eq__ is Python code that may change the key
     * lists: the sizes are read at each step, and the list and key in hand
     * are held. */
    Py_ssize_t got = 0;
    for (Py_ssize_t j = 0; j < PyList_GET_SIZE(lists) && got < k; j++) {
        PyObject *keys = Py_NewRef(PyList_GET_ITEM(lists, j));
        if (!PyList_Check(keys)) {
            Py_DECREF(keys);
            PyErr_SetString(PyExc_TypeError, "side must be a SortedDict");
            Py_CLEAR(out);
            goto done;
        }
        for (Py_ssize_t m = 0; m < PyList_GET_SIZE(keys) && got < k; m++) {
            PyObject *key = Py_NewRef(PyList_GET_ITEM(keys, m));
            PyObject *value = Py_XNewRef(PyDict_GetItemWithError(values, key));
            Py_DECREF(key); /* after the value is held: a last key's __del__ is Python too */
            if (value == NULL) {
                if (!PyErr_Occurred()) {
                    PyErr_SetString(PyExc_RuntimeError, "SortedDict keys and items disagree");
                }
                Py_DECREF(keys);
                Py_CLEAR(out);
                goto done;
            }
            PyTuple_SET_ITEM(out, got++, value);
        }
        Py_DECREF(keys);
    }
    if (got < k) {
        PyErr_SetString(PyExc_RuntimeError, "SortedDict keys and items disagree");
        Py_CLEAR(out);
    }
done:
    Py_DECREF(lists);
    return out;
}

/*
 * crc32_digits(first, second) -> int
 *     zlib.crc32 (unsigned) of the levels of `first` then `second`, each
 *     level (price, amount) a pair of str, each string written without its
 *     '.' and with its leading zeros stripped (Kraken's book checksum).
 *
 * crc32_interleaved(bids, asks) -> int
 *     zlib.crc32 (unsigned) of "bid price:bid amount:ask price:ask amount:..."
 *     for level 0, 1, ... of each side while it has one (OKX's).
 *
 * Both read the strings' UTF-8 as Python's str.encode() writes it, and call
 * no Python code: each level in hand is held, each list indexed after its
 * current size is read. The pure-Python twins are in
 * dragonfly/core/checksum.py.
 */
/* Slicing-by-8 (eight bytes a step through eight tables): ~4x fewer
 * instructions a byte than the one-table loop; the checksum text is
 * gathered in a buffer first (CrcSink) so that it runs over long spans. */
static uint32_t crc_table[8][256];

static void
crc_table_init(void)
{
    if (crc_table[0][1] != 0) {
        return;
    }
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        for (int t = 1; t < 8; t++) {
            uint32_t prev = crc_table[t - 1][i];
            crc_table[t][i] = (prev >> 8) ^ crc_table[0][prev & 0xFF];
        }
    }
}

static uint32_t
crc_bytes(uint32_t crc, const char *text, Py_ssize_t n)
{
    const unsigned char *p = (const unsigned char *)text;
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        crc = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^ crc_table[5][(lo >> 16) & 0xFF]
              ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF]
              ^ crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n-- > 0) {
        crc = crc_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    }
    return crc;
}

/* The checksum text, gathered and CRC'd a buffer at a time. */
#define CRC_SINK 512
typedef struct {
    uint32_t crc;
    Py_ssize_t len;
    char buf[CRC_SINK];
} CrcSink;

static void
sink_flush(CrcSink *s)
{
    s->crc = crc_bytes(s->crc, s->buf, s->len);
    s->len = 0;
}

/* Append text[0, n) as is. */
static void
sink_put(CrcSink *s, const char *text, Py_ssize_t n)
{
    while (n > 0) {
        if (s->len == CRC_SINK) {
            sink_flush(s);
        }
        Py_ssize_t room = CRC_SINK - s->len;
        Py_ssize_t take = n < room ? n : room;
        memcpy(s->buf + s->len, text, (size_t)take);
        s->len += take;
        text += take;
        n -= take;
    }
}

/* Append text[0, n) without its '.' (a number has one at most: memchr and
 * whole spans, ~3x fewer instructions than a byte-by-byte filter). */
static void
sink_put_digits(CrcSink *s, const char *text, Py_ssize_t n)
{
    while (n > 0) {
        const char *dot = memchr(text, '.', (size_t)n);
        Py_ssize_t span = dot == NULL ? n : dot - text;
        sink_put(s, text, span);
        if (dot == NULL) {
            break;
        }
        text += span + 1;
        n -= span + 1;
    }
}

/* Level i of `seq` (a PySequence_Fast) as a held tuple of two str, its UTF-8
 * in *text; NULL with an exception set. */
static PyObject *
text_level(PyObject *seq, Py_ssize_t i, const char *text[2], Py_ssize_t len[2])
{
    PyObject *level = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i));
    if (!PyTuple_Check(level) || PyTuple_GET_SIZE(level) != 2) {
        PyErr_SetString(PyExc_TypeError, "a level must be a (price, amount) tuple of str");
        goto error;
    }
    for (int k = 0; k < 2; k++) {
        PyObject *item = PyTuple_GET_ITEM(level, k);
        if (!PyUnicode_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "a level must be a (price, amount) tuple of str");
            goto error;
        }
        text[k] = PyUnicode_AsUTF8AndSize(item, &len[k]);
        if (text[k] == NULL) {
            goto error;
        }
    }
    return level;
error:
    Py_DECREF(level);
    return NULL;
}

static PyObject *
crc32_digits(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "crc32_digits(first, second)");
        return NULL;
    }
    crc_table_init();
    CrcSink sink;
    sink.crc = 0xFFFFFFFFu;
    sink.len = 0;
    for (int s = 0; s < 2; s++) {
        PyObject *seq = PySequence_Fast(args[s], "a side must be a sequence");
        if (seq == NULL) {
            return NULL;
        }
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
            const char *text[2];
            Py_ssize_t len[2];
            PyObject *level = text_level(seq, i, text, len);
            if (level == NULL) {
                Py_DECREF(seq);
                return NULL;
            }
            for (int k = 0; k < 2; k++) {
                /* The leading zeros of the text without its '.': every
                 * leading '0' or '.'. */
                Py_ssize_t j = 0;
                while (j < len[k] && (text[k][j] == '0' || text[k][j] == '.')) {
                    j++;
                }
                sink_put_digits(&sink, text[k] + j, len[k] - j);
            }
            Py_DECREF(level);
        }
        Py_DECREF(seq);
    }
    sink_flush(&sink);
    return PyLong_FromUnsignedLong((unsigned long)(sink.crc ^ 0xFFFFFFFFu));
}

static PyObject *
crc32_interleaved(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "crc32_interleaved(bids, asks)");
        return NULL;
    }
    crc_table_init();
    PyObject *sides[2] = {NULL, NULL};
    PyObject *result = NULL;
    for (int s = 0; s < 2; s++) {
        sides[s] = PySequence_Fast(args[s], "a side must be a sequence");
        if (sides[s] == NULL) {
            goto done;
        }
    }
    CrcSink sink;
    sink.crc = 0xFFFFFFFFu;
    sink.len = 0;
    int first = 1;
    for (Py_ssize_t i = 0;; i++) {
        int any = 0;
        for (int s = 0; s < 2; s++) {
            if (i >= PySequence_Fast_GET_SIZE(sides[s])) {
                continue;
            }
            any = 1;
            const char *text[2];
            Py_ssize_t len[2];
            PyObject *level = text_level(sides[s], i, text, len);
            if (level == NULL) {
                goto done;
            }
            if (!first) {
                sink_put(&sink, ":", 1);
            }
            first = 0;
            sink_put(&sink, text[0], len[0]);
            sink_put(&sink, ":", 1);
            sink_put(&sink, text[1], len[1]);
            Py_DECREF(level);
        }
        if (!any) {
            break;
        }
    }
    sink_flush(&sink);
    result = PyLong_FromUnsignedLong((unsigned long)(sink.crc ^ 0xFFFFFFFFu));
done:
    Py_XDECREF(sides[0]);
    Py_XDECREF(sides[1]);
    return result;
}

/*
 * side_sums(side, negate) -> (keys, amounts, notionals) | None
 *
 * What the liquidity view reads of one venue side (side_sums_py in
 * dragonfly/core/liquidity.py, its twin): the side's bisect keys (its prices,
 * negated into a list when `negate`, else the prices themselves in a tuple)
 * and the running sums of its amounts and of price * amount, each a list
 * starting at 0.0, added left to right as itertools.accumulate adds them,
 * each product rounded to a double before it is added (no fused multiply-add:
 * the twin's floats bit for bit). One pass, no intermediate tuples.
 *
 * None (the twin decides, and raises where it must) unless `side` is a
 * non-empty tuple of 2-tuples of floats, all of exactly those types. Once the
 * side is checked, only allocations here can run Python (a collection's
 * finalizers), and nothing they do can change what is read: the tuples and
 * floats are immutable and the caller holds the side.
 */
static PyObject *
side_sums(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "side_sums(side, negate)");
        return NULL;
    }
    int negate = PyObject_IsTrue(args[1]);
    if (negate < 0) {
        return NULL;
    }
    PyObject *side = args[0];
    if (!PyTuple_CheckExact(side)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(side);
    if (n == 0 || n > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(PyObject *) - 1) {
        Py_RETURN_NONE;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *level = PyTuple_GET_ITEM(side, i);
        if (!PyTuple_CheckExact(level) || PyTuple_GET_SIZE(level) != 2 ||
            !PyFloat_CheckExact(PyTuple_GET_ITEM(level, 0)) || !PyFloat_CheckExact(PyTuple_GET_ITEM(level, 1))) {
            Py_RETURN_NONE;
        }
    }
    PyObject *keys = negate ? PyList_New(n) : PyTuple_New(n);
    PyObject *amounts = PyList_New(n + 1);
    PyObject *notionals = PyList_New(n + 1);
    PyObject *result = NULL;
    if (keys == NULL || amounts == NULL || notionals == NULL) {
        goto done;
    }
    /* Filled in order; a list's unset items are NULL, which its dealloc skips. */
    double amount_sum = 0.0;
    double notional_sum = 0.0;
    PyObject *zero = PyFloat_FromDouble(0.0);
    if (zero == NULL) {
        goto done;
    }
    PyList_SET_ITEM(amounts, 0, Py_NewRef(zero));
    PyList_SET_ITEM(notionals, 0, zero);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *level = PyTuple_GET_ITEM(side, i);
        PyObject *price = PyTuple_GET_ITEM(level, 0);
        double p = PyFloat_AS_DOUBLE(price);
        double a = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(level, 1));
        PyObject *key;
        if (negate) {
            key = PyFloat_FromDouble(-p);
            if (key == NULL) {
                goto done;
            }
            PyList_SET_ITEM(keys, i, key);
        }
        else {
            PyTuple_SET_ITEM(keys, i, Py_NewRef(price));
        }
        /* volatile: the product is rounded on its own, as Python's float * does. */
        volatile double product = p * a;
        amount_sum = amount_sum + a;
        notional_sum = notional_sum + product;
        PyObject *sum = PyFloat_FromDouble(amount_sum);
        if (sum == NULL) {
            goto done;
        }
        PyList_SET_ITEM(amounts, i + 1, sum);
        sum = PyFloat_FromDouble(notional_sum);
        if (sum == NULL) {
            goto done;
        }
        PyList_SET_ITEM(notionals, i + 1, sum);
    }
    result = PyTuple_Pack(3, keys, amounts, notionals);
done:
    Py_XDECREF(keys);
    Py_XDECREF(amounts);
    Py_XDECREF(notionals);
    return result;
}

/*
 * bbo_quotes(bid_runs, ask_runs, quote_type, level_type, nan) -> (quotes, best_bid, best_ask) | None
 *
 * The bbo aggregator's recompute (bbo_quotes_py in dragonfly/core/bbo.py,
 * its twin): bid_runs and ask_runs hold one (name, side) run per venue, in
 * the same order. A venue with both sides empty has no quote; the others get
 * a `quote_type` tuple (name, bid_price, bid_amount, ask_price, ask_amount)
 * of their sides' first levels, an empty side quoted at `nan` (the object
 * given) for a 0.0. The best bid is the first venue with the highest price,
 * then the larger amount; the best ask the lowest price, then the larger
 * amount: a `level_type` tuple (name, price, amount), or None where no venue
 * has that side. Every name is the bid run's, and the prices and amounts are
 * the levels' own float objects. C double comparisons are Python's on floats,
 * NaN included.
 *
 * TypeError for a type that is not a tuple subclass, or runs that are not
 * sequences; ValueError for runs of different lengths. None (the twin
 * decides), before any Python code runs and with nothing built, for a type
 * that is not plain_tuple_type's (a struct sequence), and unless every run
 * is a plain 2-tuple whose side is a plain tuple and every non-empty side's
 * first level a plain 2-tuple of exact floats (only that level is read).
 * Once checked, only allocations here can run Python (a collection's
 * finalizers), and nothing they do changes what is read: the runs are our
 * tuple copies, everything in them immutable, and the caller holds `nan`.
 */
static PyObject *
bbo_quotes(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "bbo_quotes(bid_runs, ask_runs, quote_type, level_type, nan)");
        return NULL;
    }
    for (int i = 2; i < 4; i++) {
        if (!PyType_Check(args[i]) || !PyType_IsSubtype((PyTypeObject *)args[i], &PyTuple_Type)) {
            PyErr_SetString(PyExc_TypeError,
                            i == 2 ? "quote_type must be a tuple subclass" : "level_type must be a tuple subclass");
            return NULL;
        }
    }
    PyTypeObject *quote_type = (PyTypeObject *)args[2];
    PyTypeObject *level_type = (PyTypeObject *)args[3];
    PyObject *nan = args[4];

    /* Copies (tuples): a finalizer run by an allocation cannot change what is read. */
    PyObject *bid_runs = NULL, *ask_runs = NULL, *quotes = NULL, *zero = NULL, *result = NULL;
    PyObject *best[2] = {NULL, NULL};
    bid_runs = tuple_snapshot(args[0], "bid_runs must be a sequence");
    if (bid_runs == NULL) {
        goto done;
    }
    ask_runs = tuple_snapshot(args[1], "ask_runs must be a sequence");
    if (ask_runs == NULL) {
        goto done;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(bid_runs);
    if (PyTuple_GET_SIZE(ask_runs) != count) {
        PyErr_SetString(PyExc_ValueError, "bid_runs and ask_runs must have one run per venue");
        goto done;
    }
    int plain = plain_tuple_type(quote_type);
    if (plain > 0) {
        plain = plain_tuple_type(level_type);
    }
    if (plain < 0) {
        goto done;
    }
    if (plain == 0) {
        result = Py_NewRef(Py_None); /* a struct sequence: the twin's */
        goto done;
    }
    /* Check every run, and find the quoted venues and the best of each side:
     * no allocation, no Python code. */
    Py_ssize_t quoted = 0;
    int any_empty = 0;
    Py_ssize_t best_at[2] = {-1, -1};
    double best_price[2] = {0.0, 0.0}, best_amount[2] = {0.0, 0.0};
    for (Py_ssize_t r = 0; r < count; r++) {
        Py_ssize_t filled = 0;
        for (int s = 0; s < 2; s++) {
            PyObject *run = PyTuple_GET_ITEM(s == 0 ? bid_runs : ask_runs, r);
            if (!PyTuple_CheckExact(run) || PyTuple_GET_SIZE(run) != 2 ||
                !PyTuple_CheckExact(PyTuple_GET_ITEM(run, 1))) {
                result = Py_NewRef(Py_None);
                goto done;
            }
            PyObject *side = PyTuple_GET_ITEM(run, 1);
            if (PyTuple_GET_SIZE(side) == 0) {
                continue;
            }
            PyObject *level = PyTuple_GET_ITEM(side, 0);
            if (!PyTuple_CheckExact(level) || PyTuple_GET_SIZE(level) != 2 ||
                !PyFloat_CheckExact(PyTuple_GET_ITEM(level, 0)) || !PyFloat_CheckExact(PyTuple_GET_ITEM(level, 1))) {
                result = Py_NewRef(Py_None);
                goto done;
            }
            filled++;
            double p = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(level, 0));
            double a = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(level, 1));
            /* Strictly better only: an equal level keeps the earlier venue. */
            int better = best_at[s] < 0 || (s == 0 ? p > best_price[s] : p < best_price[s]) ||
                         (p == best_price[s] && a > best_amount[s]);
            if (better) {
                best_at[s] = r;
                best_price[s] = p;
                best_amount[s] = a;
            }
        }
        if (filled > 0) {
            quoted++;
            any_empty |= filled < 2;
        }
    }
    /* Built from here on; every object read is held by a tuple we hold. */
    if (any_empty) {
        zero = PyFloat_FromDouble(0.0);
        if (zero == NULL) {
            goto done;
        }
    }
    quotes = PyTuple_New(quoted);
    if (quotes == NULL) {
        goto done;
    }
    Py_ssize_t q = 0;
    for (Py_ssize_t r = 0; r < count && q < quoted; r++) {
        PyObject *bid_run = PyTuple_GET_ITEM(bid_runs, r);
        PyObject *bids = PyTuple_GET_ITEM(bid_run, 1);
        PyObject *asks = PyTuple_GET_ITEM(PyTuple_GET_ITEM(ask_runs, r), 1);
        if (PyTuple_GET_SIZE(bids) == 0 && PyTuple_GET_SIZE(asks) == 0) {
            continue;
        }
        PyObject *quote = quote_type->tp_alloc(quote_type, 5);
        if (quote == NULL) {
            goto done;
        }
        PyTuple_SET_ITEM(quote, 0, Py_NewRef(PyTuple_GET_ITEM(bid_run, 0)));
        PyObject *sides[2] = {bids, asks};
        for (int s = 0; s < 2; s++) {
            if (PyTuple_GET_SIZE(sides[s]) > 0) {
                PyObject *level = PyTuple_GET_ITEM(sides[s], 0);
                PyTuple_SET_ITEM(quote, 1 + 2 * s, Py_NewRef(PyTuple_GET_ITEM(level, 0)));
                PyTuple_SET_ITEM(quote, 2 + 2 * s, Py_NewRef(PyTuple_GET_ITEM(level, 1)));
            }
            else {
                PyTuple_SET_ITEM(quote, 1 + 2 * s, Py_NewRef(nan));
                PyTuple_SET_ITEM(quote, 2 + 2 * s, Py_NewRef(zero));
            }
        }
        PyTuple_SET_ITEM(quotes, q, quote);
        q++;
    }
    for (int s = 0; s < 2; s++) {
        if (best_at[s] < 0) {
            continue;
        }
        PyObject *name = PyTuple_GET_ITEM(PyTuple_GET_ITEM(bid_runs, best_at[s]), 0);
        PyObject *side = PyTuple_GET_ITEM(PyTuple_GET_ITEM(s == 0 ? bid_runs : ask_runs, best_at[s]), 1);
        PyObject *level = PyTuple_GET_ITEM(side, 0);
        best[s] = level_type->tp_alloc(level_type, 3);
        if (best[s] == NULL) {
            goto done;
        }
        PyTuple_SET_ITEM(best[s], 0, Py_NewRef(name));
        PyTuple_SET_ITEM(best[s], 1, Py_NewRef(PyTuple_GET_ITEM(level, 0)));
        PyTuple_SET_ITEM(best[s], 2, Py_NewRef(PyTuple_GET_ITEM(level, 1)));
    }
    result = PyTuple_Pack(3, quotes, best[0] != NULL ? best[0] : Py_None, best[1] != NULL ? best[1] : Py_None);
done:
    Py_XDECREF(best[0]);
    Py_XDECREF(best[1]);
    Py_XDECREF(quotes);
    Py_XDECREF(zero);
    Py_XDECREF(bid_runs);
    Py_XDECREF(ask_runs);
    return result;
}

/*
 * band_figures(bid_names, bid_keys, bid_amounts, ask_names, ask_keys, ask_amounts, mid, bands,
 *              band_type, amount_type) -> tuple[Band, ...] | None
 * fill_figures(names, sides, keys, amounts, notionals, quantities, sell, fill_type, amount_type,
 *              nan) -> tuple[Fill, ...] | None
 *
 * The liquidity view's figures: band_figures_py and fill_figures_py in
 * dragonfly/core/liquidity.py are their twins, and the contract (the module
 * doc there defines the figures). Per side, one item per venue in name
 * order: its name, its side (fills), its sort keys (negated prices for the
 * bids), and the prefix sums of its amounts and of price * amount, as
 * SideCache reads them. The twins' arithmetic is done here operation by
 * operation in doubles, in their order (sums left to right from 0.0, each
 * product rounded on its own: no fused multiply-add), and their bisects are
 * Python's loops, so every float is the twin's bit for bit. The fill walk's
 * heap becomes a scan of the venues' next levels for the least (key,
 * -amount, rank): with finite values a total order, so it is the venue the
 * twin's heap pops, and the least key among the other venues' next levels
 * is what heap[1] and heap[2] give there.
 *
 * The results hold the twins' objects where the twins put them: names,
 * each band's bps, each quantity (a walked fill's filled is its quantity),
 * a walked fill's worst price (its level's price), `nan` for every nan,
 * "sell"/"buy", True/False; the other floats are new, of the same bits.
 *
 * Errors: a wrong argument count, or a figure type that is not a tuple
 * subclass: TypeError; fill_figures' `sell` is read first, by its truth
 * value, whose exception comes through.
 *
 * None (the twin decides), before anything is built and, but for `sell`'s
 * truth value and plain_tuple_type's probe class (made once), before any
 * Python code runs; always where doubles are not computed as doubles
 * (FLT_EVAL_METHOD != 0: x87), else unless, in this order:
 *   1. both figure types are plain_tuple_type's (a struct sequence is
 *      declined), and fill_type's indexing is tuple's (the twin slices a
 *      fill);
 *   2. band_figures: mid is an exact float and bands an exact tuple of exact
 *      floats (any values); fill_figures: quantities is an exact tuple of
 *      exact finite floats. Empty, the result is () at once, as the twin's;
 *   3. per side, the names, keys, amounts (and notionals, sides) are exact
 *      lists or tuples of one length, at most LIQ_MAX_VENUES venues; names
 *      may be anything (they are only referenced); each venue's keys an
 *      exact list or tuple of n >= 1 exact finite floats, strictly
 *      increasing, its amounts (and notionals) an exact list or tuple of n + 1
 *      exact finite floats, its side (fills) an exact tuple of n exact
 *      2-tuples of exact finite floats;
 *   4. fill_figures with venues: their least first key is not 0 (the twin
 *      divides by the best price).
 * Strictly increasing keys (SideCache's always are: distinct prices, best
 * first) keep the twin's bisection ahead from emptying its heap (an
 * IndexError); finite values keep its heap and sort total orders; exact
 * floats keep its arithmetic a float's.
 *
 * References: the lists are read, checked and their floats copied in one
 * pass that allocates nothing but a PyMem buffer and so runs no Python code;
 * the names and sides are held from then on (the sides are tuples of tuples
 * of floats: immutable), the bands and quantities are the caller's tuples.
 * Whatever a collection's finalizers do to the lists once objects are built
 * changes nothing read.
 */

/* More venues: declined (the scans below are per run, over every venue). */
#define LIQ_MAX_VENUES 64
/* _EDGE and _SKIP_AFTER in dragonfly/core/liquidity.py. */
#define LIQ_EDGE 1e-12
#define LIQ_SKIP_AFTER 8
/* 1.0 - _EDGE, rounded once as Python rounds it. */
static const double liq_short_of = 1.0 - LIQ_EDGE;

#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
#define LIQ_DOUBLES 1
#else
/* Doubles computed in wider registers (x87) could round twice: decline every call. */
#define LIQ_DOUBLES 0
#endif

static PyObject *str_sell, *str_buy; /* interned labels, held for the module's life */

/* One side's venues as read: the names and sides held, the floats copied. */
typedef struct {
    Py_ssize_t count;
    int held;
    PyObject *names[LIQ_MAX_VENUES];
    PyObject *sides[LIQ_MAX_VENUES];
    Py_ssize_t n[LIQ_MAX_VENUES];
    double *keys[LIQ_MAX_VENUES];      /* n */
    double *amounts[LIQ_MAX_VENUES];   /* n + 1 */
    double *notionals[LIQ_MAX_VENUES]; /* n + 1; fills only */
    double *buffer;
} LiqVenues;

static void
liq_release(LiqVenues *s)
{
    if (s->held) {
        for (Py_ssize_t v = 0; v < s->count; v++) {
            Py_DECREF(s->names[v]);
            Py_XDECREF(s->sides[v]);
        }
        s->held = 0;
    }
    PyMem_Free(s->buffer);
    s->buffer = NULL;
}

static int
liq_sequence(PyObject *seq)
{
    return PyList_CheckExact(seq) || PyTuple_CheckExact(seq);
}

/* Copy `size` exact finite floats of `seq` (an exact list or tuple) to out: 1, else 0. */
static int
liq_floats(PyObject *seq, Py_ssize_t size, double *out, int increasing)
{
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < size; i++) {
        PyObject *x = items[i];
        if (!PyFloat_CheckExact(x)) {
            return 0;
        }
        double d = PyFloat_AS_DOUBLE(x);
        if (!isfinite(d) || (increasing && i > 0 && !(out[i - 1] < d))) {
            return 0;
        }
        out[i] = d;
    }
    return 1;
}

/* Whether `side` is a tuple of n exact 2-tuples of exact finite floats (its size checked). */
static int
liq_side(PyObject *side, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *level = PyTuple_GET_ITEM(side, i);
        if (!PyTuple_CheckExact(level) || PyTuple_GET_SIZE(level) != 2) {
            return 0;
        }
        PyObject *price = PyTuple_GET_ITEM(level, 0), *amount = PyTuple_GET_ITEM(level, 1);
        if (!PyFloat_CheckExact(price) || !PyFloat_CheckExact(amount) || !isfinite(PyFloat_AS_DOUBLE(price)) ||
            !isfinite(PyFloat_AS_DOUBLE(amount))) {
            return 0;
        }
    }
    return 1;
}

/*
 * Read one side's venues (rule 3 above; notionals and sides NULL for the
 * bands): 1 read (release it), 0 declined, -1 with MemoryError set (nothing
 * to release either way but on 1). Runs no Python code.
 */
static int
liq_read(LiqVenues *s, PyObject *names, PyObject *keys, PyObject *amounts, PyObject *notionals,
         PyObject *sides)
{
    s->count = 0;
    s->held = 0;
    s->buffer = NULL;
    int fills = notionals != NULL;
    PyObject *seqs[5] = {names, keys, amounts, notionals, sides};
    Py_ssize_t count = 0;
    for (int j = 0; j < (fills ? 5 : 3); j++) {
        if (!liq_sequence(seqs[j])) {
            return 0;
        }
        if (j > 0 && PySequence_Fast_GET_SIZE(seqs[j]) != count) {
            return 0;
        }
        count = PySequence_Fast_GET_SIZE(seqs[j]);
    }
    if (count > LIQ_MAX_VENUES) {
        return 0;
    }
    PyObject **key_items = PySequence_Fast_ITEMS(keys);
    PyObject **amount_items = PySequence_Fast_ITEMS(amounts);
    PyObject **notional_items = fills ? PySequence_Fast_ITEMS(notionals) : NULL;
    PyObject **side_items = fills ? PySequence_Fast_ITEMS(sides) : NULL;
    size_t total = 0; /* doubles to copy */
    for (Py_ssize_t v = 0; v < count; v++) {
        if (!liq_sequence(key_items[v]) || !liq_sequence(amount_items[v])) {
            return 0;
        }
        Py_ssize_t n = PySequence_Fast_GET_SIZE(key_items[v]);
        if (n < 1 || PySequence_Fast_GET_SIZE(amount_items[v]) != n + 1) {
            return 0;
        }
        if (fills && (!liq_sequence(notional_items[v]) || PySequence_Fast_GET_SIZE(notional_items[v]) != n + 1 ||
                      !PyTuple_CheckExact(side_items[v]) || PyTuple_GET_SIZE(side_items[v]) != n)) {
            return 0;
        }
        s->n[v] = n;
        /* n is a list's size (< PY_SSIZE_T_MAX / 8): no overflow while total stays in bounds. */
        if (total > (size_t)PY_SSIZE_T_MAX / sizeof(double) / 2) {
            PyErr_NoMemory();
            return -1;
        }
        total += (size_t)n * (fills ? 3 : 2) + (fills ? 2 : 1);
    }
    if (total > (size_t)PY_SSIZE_T_MAX / sizeof(double)) {
        PyErr_NoMemory();
        return -1;
    }
    if (count > 0) {
        s->buffer = PyMem_Malloc(total * sizeof(double)); /* runs no Python code */
        if (s->buffer == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    double *at = s->buffer;
    for (Py_ssize_t v = 0; v < count; v++) {
        Py_ssize_t n = s->n[v];
        s->keys[v] = at;
        at += n;
        s->amounts[v] = at;
        at += n + 1;
        if (!liq_floats(key_items[v], n, s->keys[v], 1) || !liq_floats(amount_items[v], n + 1, s->amounts[v], 0)) {
            goto declined;
        }
        if (fills) {
            s->notionals[v] = at;
            at += n + 1;
            if (!liq_floats(notional_items[v], n + 1, s->notionals[v], 0) || !liq_side(side_items[v], n)) {
                goto declined;
            }
        }
    }
    PyObject **name_items = PySequence_Fast_ITEMS(names);
    for (Py_ssize_t v = 0; v < count; v++) {
        s->names[v] = Py_NewRef(name_items[v]);
        s->sides[v] = fills ? Py_NewRef(side_items[v]) : NULL;
    }
    s->count = count;
    s->held = 1;
    return 1;

declined:
    PyMem_Free(s->buffer);
    s->buffer = NULL;
    return 0;
}

/*
 * The figure types (rule 1): 1 both plain, 0 declined, -1 with an
 * exception set (TypeError for a type that is not a tuple subclass).
 */
static int
liq_types(PyObject *figure, PyObject *amount, const char *message, int sliced)
{
    PyObject *types[2] = {figure, amount};
    for (int i = 0; i < 2; i++) {
        if (!PyType_Check(types[i]) || !PyType_IsSubtype((PyTypeObject *)types[i], &PyTuple_Type)) {
            PyErr_SetString(PyExc_TypeError, message);
            return -1;
        }
    }
    for (int i = 0; i < 2; i++) {
        int plain = plain_tuple_type((PyTypeObject *)types[i]);
        if (plain <= 0) {
            return plain;
        }
    }
    PyMappingMethods *mapping = ((PyTypeObject *)figure)->tp_as_mapping;
    if (sliced && (mapping == NULL || mapping->mp_subscript != PyTuple_Type.tp_as_mapping->mp_subscript)) {
        return 0;
    }
    return 1;
}

/* bisect.bisect_left(a, x, lo, hi) on doubles: Python's loop, comparison for comparison. */
static Py_ssize_t
liq_bisect_left(const double *a, double x, Py_ssize_t lo, Py_ssize_t hi)
{
    while (lo < hi) {
        Py_ssize_t mid = (Py_ssize_t)(((size_t)lo + (size_t)hi) / 2);
        if (a[mid] < x) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    return lo;
}

/* bisect.bisect_right(a, x, lo, hi) on doubles. */
static Py_ssize_t
liq_bisect_right(const double *a, double x, Py_ssize_t lo, Py_ssize_t hi)
{
    while (lo < hi) {
        Py_ssize_t mid = (Py_ssize_t)(((size_t)lo + (size_t)hi) / 2);
        if (x < a[mid]) {
            hi = mid;
        }
        else {
            lo = mid + 1;
        }
    }
    return lo;
}

/* _parts: an amount_type (name, amount) for each venue whose amount is true
 * (not 0; NaN is, as a float's truth in compress), in venue order. */
static PyObject *
liq_parts(PyTypeObject *amount_type, PyObject *const *names, const double *amounts, Py_ssize_t count)
{
    Py_ssize_t nonzero = 0;
    for (Py_ssize_t v = 0; v < count; v++) {
        nonzero += amounts[v] != 0.0;
    }
    PyObject *parts = PyTuple_New(nonzero);
    if (parts == NULL) {
        return NULL;
    }
    Py_ssize_t j = 0;
    for (Py_ssize_t v = 0; v < count; v++) {
        if (amounts[v] == 0.0) {
            continue;
        }
        PyObject *value = PyFloat_FromDouble(amounts[v]);
        if (value == NULL) {
            Py_DECREF(parts);
            return NULL;
        }
        /* tp_alloc may collect garbage: the name is held by the caller's LiqVenues. */
        PyObject *pair = amount_type->tp_alloc(amount_type, 2);
        if (pair == NULL) {
            Py_DECREF(value);
            Py_DECREF(parts);
            return NULL;
        }
        PyTuple_SET_ITEM(pair, 0, Py_NewRef(names[v]));
        PyTuple_SET_ITEM(pair, 1, value);
        PyTuple_SET_ITEM(parts, j, pair);
        j++;
    }
    return parts;
}

/* tuple.__new__(type, items) of `size` new references (stolen; any NULL: fails, releasing the rest). */
static PyObject *
liq_tuple(PyTypeObject *type, PyObject **items, Py_ssize_t size)
{
    for (Py_ssize_t i = 0; i < size; i++) {
        if (items[i] == NULL) {
            goto fail;
        }
    }
    PyObject *made = type->tp_alloc(type, size);
    if (made == NULL) {
        goto fail;
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        PyTuple_SET_ITEM(made, i, items[i]);
    }
    return made;
fail:
    for (Py_ssize_t i = 0; i < size; i++) {
        Py_XDECREF(items[i]);
    }
    return NULL;
}

static PyObject *
band_figures(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError,
                        "band_figures(bid_names, bid_keys, bid_amounts, ask_names, ask_keys, ask_amounts, mid, "
                        "bands, band_type, amount_type)");
        return NULL;
    }
    int plain = liq_types(args[8], args[9], "band_type and amount_type must be tuple subclasses", 0);
    if (plain <= 0) {
        return plain < 0 ? NULL : Py_NewRef(Py_None);
    }
    PyTypeObject *band_type = (PyTypeObject *)args[8], *amount_type = (PyTypeObject *)args[9];
    PyObject *bands = args[7];
    if (!LIQ_DOUBLES || !PyFloat_CheckExact(args[6]) || !PyTuple_CheckExact(bands)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(bands);
    for (Py_ssize_t b = 0; b < count; b++) {
        if (!PyFloat_CheckExact(PyTuple_GET_ITEM(bands, b))) {
            Py_RETURN_NONE;
        }
    }
    if (count == 0) {
        return PyTuple_New(0);
    }
    LiqVenues sides[2];
    int read = liq_read(&sides[0], args[0], args[1], args[2], NULL, NULL);
    if (read <= 0) {
        return read < 0 ? NULL : Py_NewRef(Py_None);
    }
    read = liq_read(&sides[1], args[3], args[4], args[5], NULL, NULL);
    if (read <= 0) {
        liq_release(&sides[0]);
        return read < 0 ? NULL : Py_NewRef(Py_None);
    }
    /* Read: from here on only what was copied or is held. */
    double mid = PyFloat_AS_DOUBLE(args[6]);
    PyObject *result = PyTuple_New(count);
    if (result == NULL) {
        goto done;
    }
    for (Py_ssize_t b = 0; b < count; b++) {
        PyObject *bps = PyTuple_GET_ITEM(bands, b);
        /* volatile: the product rounded on its own, as Python's float * rounds it. */
        volatile double scaled = PyFloat_AS_DOUBLE(bps) * 1e-4;
        double width = scaled + LIQ_EDGE;
        /* Bid keys are negated prices: price >= low <=> -price <= -low. */
        double bounds[2] = {-(mid * (1.0 - width)), mid * (1.0 + width)};
        double parts[2][LIQ_MAX_VENUES], sums[2];
        for (int s = 0; s < 2; s++) {
            const LiqVenues *venues = &sides[s];
            sums[s] = 0.0;
            for (Py_ssize_t v = 0; v < venues->count; v++) {
                Py_ssize_t end = liq_bisect_right(venues->keys[v], bounds[s], 0, venues->n[v]);
                parts[s][v] = venues->amounts[v][end];
                sums[s] = sums[s] + parts[s][v];
            }
        }
        PyObject *items[5] = {Py_NewRef(bps), NULL, NULL, NULL, NULL};
        for (int s = 0; s < 2; s++) {
            if ((items[1 + s] = PyFloat_FromDouble(sums[s])) == NULL ||
                (items[3 + s] = liq_parts(amount_type, sides[s].names, parts[s], sides[s].count)) == NULL) {
                break;
            }
        }
        PyObject *band = liq_tuple(band_type, items, 5);
        if (band == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyTuple_SET_ITEM(result, b, band);
    }
done:
    liq_release(&sides[0]);
    liq_release(&sides[1]);
    return result;
}

/* What every fill of one call is made with. */
typedef struct {
    PyTypeObject *fill_type;
    PyTypeObject *amount_type;
    PyObject *label;
    PyObject *nan;
    int sell;
    double best;
    const LiqVenues *venues;
} LiqKit;

/* (label, quantity, 0.0, nan, nan, nan, (), False): nothing filled. */
static PyObject *
liq_unfilled(const LiqKit *kit, PyObject *quantity)
{
    PyObject *items[8] = {
        Py_NewRef(kit->label), Py_NewRef(quantity), PyFloat_FromDouble(0.0), Py_NewRef(kit->nan),
        Py_NewRef(kit->nan),   Py_NewRef(kit->nan), PyTuple_New(0),          Py_NewRef(Py_False),
    };
    return liq_tuple(kit->fill_type, items, 8);
}

/*
 * _result: the fill of `quantity` (held by the caller) that took `filled`
 * for `notional`, its last price `worst`; `filled_obj` the filled object
 * when it is one (a walked fill's quantity), else NULL (a new float).
 * `worst` and `parts` are new references (stolen; NULL: an error is set).
 */
static PyObject *
liq_result(const LiqKit *kit, PyObject *quantity, double filled, PyObject *filled_obj, double notional,
           PyObject *worst, PyObject *parts)
{
    if (worst == NULL || parts == NULL || filled == 0.0) {
        Py_XDECREF(worst);
        Py_XDECREF(parts);
        return worst == NULL || parts == NULL ? NULL : liq_unfilled(kit, quantity);
    }
    double average = notional / filled;
    double slippage = kit->sell ? kit->best - average : average - kit->best;
    slippage = slippage / kit->best;
    slippage = slippage * 1e4;
    if (slippage < 0.0) { /* only a float rounding: no fill beats the best price */
        slippage = 0.0;
    }
    int complete = filled == PyFloat_AS_DOUBLE(quantity);
    PyObject *items[8] = {
        Py_NewRef(kit->label),
        Py_NewRef(quantity),
        filled_obj != NULL ? Py_NewRef(filled_obj) : PyFloat_FromDouble(filled),
        PyFloat_FromDouble(average),
        worst,
        PyFloat_FromDouble(slippage),
        parts,
        Py_NewRef(complete ? Py_True : Py_False),
    };
    return liq_tuple(kit->fill_type, items, 8);
}

/* _whole: every level of every venue (`total` of them) for `quantity`. */
static PyObject *
liq_whole(const LiqKit *kit, PyObject *quantity, double total)
{
    const LiqVenues *s = kit->venues;
    double lasts[LIQ_MAX_VENUES];
    double worst_key = s->keys[0][s->n[0] - 1];
    double notional = 0.0;
    for (Py_ssize_t v = 0; v < s->count; v++) {
        double key = s->keys[v][s->n[v] - 1];
        if (key > worst_key) { /* max(): the first of equal keys */
            worst_key = key;
        }
        notional = notional + s->notionals[v][s->n[v]];
        lasts[v] = s->amounts[v][s->n[v]];
    }
    PyObject *parts = liq_parts(kit->amount_type, s->names, lasts, s->count);
    PyObject *worst = PyFloat_FromDouble(kit->sell ? -worst_key : worst_key);
    return liq_result(kit, quantity, total, NULL, notional, worst, parts);
}

/* _skip: take whole every level a fill reaching `reach` surely takes whole;
 * the bisection's lows become the cursor (the heads follow from it). */
static void
liq_skip(const LiqVenues *s, Py_ssize_t *cursor, double reach)
{
    Py_ssize_t lows[LIQ_MAX_VENUES], highs[LIQ_MAX_VENUES], ends[LIQ_MAX_VENUES];
    Py_ssize_t count = s->count;
    for (Py_ssize_t v = 0; v < count; v++) {
        lows[v] = cursor[v];
        highs[v] = s->n[v];
    }
    for (;;) {
        Py_ssize_t rank = 0, most = highs[0] - lows[0];
        for (Py_ssize_t v = 1; v < count; v++) {
            if (highs[v] - lows[v] > most) { /* counts.index(max(counts)): the first */
                most = highs[v] - lows[v];
                rank = v;
            }
        }
        if (most < 2) {
            break;
        }
        double probe = s->keys[rank][lows[rank] + (most - 1) / 2];
        double sum = 0.0;
        for (Py_ssize_t v = 0; v < count; v++) {
            ends[v] = liq_bisect_right(s->keys[v], probe, lows[v], highs[v]);
            sum = sum + s->amounts[v][ends[v]];
        }
        memcpy(sum >= reach ? highs : lows, ends, (size_t)count * sizeof(Py_ssize_t));
    }
    memcpy(cursor, lows, (size_t)count * sizeof(Py_ssize_t));
}

/* Level i of venue v: its price object, its amount (the side is a held tuple of float pairs, checked). */
#define LIQ_LEVEL_PRICE(s, v, i) PyTuple_GET_ITEM(PyTuple_GET_ITEM((s)->sides[v], (i)), 0)
#define LIQ_LEVEL_AMOUNT(s, v, i) PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(PyTuple_GET_ITEM((s)->sides[v], (i)), 1))

/*
 * _walk: fill quantities[walk[i]] for each i (increasing quantities) in one
 * K-way walk, setting their slots of `fills`: 1 when it set them all, 0 if
 * the levels ran out first, -1 with an exception set.
 */
static int
liq_walk(const LiqKit *kit, PyObject *quantities, const Py_ssize_t *walk, Py_ssize_t walking, PyObject *fills)
{
    const LiqVenues *s = kit->venues;
    Py_ssize_t count = s->count;
    Py_ssize_t cursor[LIQ_MAX_VENUES]; /* each venue's levels taken whole */
    double taken[LIQ_MAX_VENUES];      /* their amounts */
    double parts[LIQ_MAX_VENUES];
    double head_key[LIQ_MAX_VENUES], head_neg[LIQ_MAX_VENUES]; /* each venue's next level: key, -amount */
    Py_ssize_t active = count;                                 /* venues with levels left (the heap's size) */
    for (Py_ssize_t v = 0; v < count; v++) {
        cursor[v] = 0;
        taken[v] = 0.0;
        head_key[v] = s->keys[v][0];
        head_neg[v] = -LIQ_LEVEL_AMOUNT(s, v, 0);
    }
    double filled = 0.0; /* == sum(taken), summed in walk order */
    double notional = 0.0;
    Py_ssize_t done = 0;
    int runs = 0; /* runs walked towards the current quantity */
    Py_ssize_t index = walk[0];
    PyObject *target_obj = PyTuple_GET_ITEM(quantities, index);
    double target = PyFloat_AS_DOUBLE(target_obj);
    volatile double reach = target * liq_short_of; /* rounded on its own: reach - filled is no fused op */
    while (active > 0) {
        if (runs == LIQ_SKIP_AFTER) {
            /* A deep fill through interleaved venues: jump close to its end. */
            liq_skip(s, cursor, reach);
            filled = 0.0;
            notional = 0.0;
            active = 0;
            for (Py_ssize_t v = 0; v < count; v++) {
                taken[v] = s->amounts[v][cursor[v]];
                filled = filled + taken[v];
                notional = notional + s->notionals[v][cursor[v]];
                if (cursor[v] < s->n[v]) {
                    active++;
                    head_key[v] = s->keys[v][cursor[v]];
                    head_neg[v] = -LIQ_LEVEL_AMOUNT(s, v, cursor[v]);
                }
            }
            runs = 0;
            if (active == 0) { /* the twin's heap[0] of an empty heap: not with increasing keys */
                PyErr_SetString(PyExc_IndexError, "list index out of range");
                return -1;
            }
        }
        /* The heap's top: the least (key, -amount, rank); and the least key of the others. */
        Py_ssize_t rank = -1;
        for (Py_ssize_t v = 0; v < count; v++) {
            if (cursor[v] < s->n[v] &&
                (rank < 0 || head_key[v] < head_key[rank] ||
                 (head_key[v] == head_key[rank] && head_neg[v] < head_neg[rank]))) {
                rank = v;
            }
        }
        const double *keys = s->keys[rank];
        const double *amounts = s->amounts[rank];
        const double *notionals = s->notionals[rank];
        Py_ssize_t n = s->n[rank];
        Py_ssize_t start = cursor[rank];
        Py_ssize_t end = n;
        if (active > 1) {
            /* This venue's run: its levels strictly better than the next venue's best. */
            double following = 0.0;
            int found = 0;
            for (Py_ssize_t v = 0; v < count; v++) {
                if (v != rank && cursor[v] < s->n[v] && (!found || head_key[v] < following)) {
                    following = head_key[v];
                    found = 1;
                }
            }
            end = liq_bisect_left(keys, following, start + 1, n);
        }
        double base = amounts[start];
        double run = amounts[end] - base;
        while (filled + run >= reach) {
            /* The quantity ends in this run, at the first level whose
             * cumulative amount reaches it (within _EDGE). */
            Py_ssize_t last = liq_bisect_left(amounts, base + (reach - filled), start + 1, end) - 1;
            double need = target - filled;
            PyObject *price_obj = LIQ_LEVEL_PRICE(s, rank, last);
            double price = PyFloat_AS_DOUBLE(price_obj);
            double cost = notional + (notionals[last] - notionals[start]);
            volatile double rest = (need - (amounts[last] - base)) * price; /* rounded on its own */
            cost = cost + rest;
            memcpy(parts, taken, (size_t)count * sizeof(double));
            parts[rank] = taken[rank] + need;
            PyObject *fill = liq_result(kit, target_obj, target, target_obj, cost, Py_NewRef(price_obj),
                                        liq_parts(kit->amount_type, s->names, parts, count));
            if (fill == NULL) {
                return -1;
            }
            PyTuple_SET_ITEM(fills, index, fill);
            done++;
            if (done == walking) {
                return 1;
            }
            runs = 0;
            index = walk[done];
            target_obj = PyTuple_GET_ITEM(quantities, index);
            target = PyFloat_AS_DOUBLE(target_obj);
            reach = target * liq_short_of;
        }
        filled = filled + run;
        notional = notional + (notionals[end] - notionals[start]);
        taken[rank] = taken[rank] + run;
        cursor[rank] = end;
        runs++;
        if (end < n) {
            head_key[rank] = keys[end];
            head_neg[rank] = -LIQ_LEVEL_AMOUNT(s, rank, end);
        }
        else {
            active--;
        }
    }
    return 0;
}

/* A quantity's place in list.sort's order: by value, then by index (the sort is stable). */
typedef struct {
    double q;
    Py_ssize_t i;
} LiqOrder;

static int
liq_order_cmp(const void *a, const void *b)
{
    const LiqOrder *x = a, *y = b;
    if (x->q < y->q) {
        return -1;
    }
    if (y->q < x->q) {
        return 1;
    }
    return (x->i > y->i) - (x->i < y->i);
}

#define LIQ_SMALL_QUANTITIES 16

static PyObject *
fill_figures(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError,
                        "fill_figures(names, sides, keys, amounts, notionals, quantities, sell, fill_type, "
                        "amount_type, nan)");
        return NULL;
    }
    int sell = PyObject_IsTrue(args[6]);
    if (sell < 0) {
        return NULL;
    }
    int plain = liq_types(args[7], args[8], "fill_type and amount_type must be tuple subclasses", 1);
    if (plain <= 0) {
        return plain < 0 ? NULL : Py_NewRef(Py_None);
    }
    PyObject *quantities = args[5];
    if (!LIQ_DOUBLES || !PyTuple_CheckExact(quantities)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(quantities);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *q = PyTuple_GET_ITEM(quantities, i);
        if (!PyFloat_CheckExact(q) || !isfinite(PyFloat_AS_DOUBLE(q))) {
            Py_RETURN_NONE;
        }
    }
    if (count == 0) {
        return PyTuple_New(0);
    }
    PyObject *label = sell ? interned(&str_sell, "sell") : interned(&str_buy, "buy");
    if (label == NULL) {
        return NULL;
    }
    LiqVenues venues;
    int read = liq_read(&venues, args[0], args[2], args[3], args[4], args[1]);
    if (read <= 0) {
        return read < 0 ? NULL : Py_NewRef(Py_None);
    }
    /* Read: from here on only what was copied or is held. */
    double best_key = 0.0;
    for (Py_ssize_t v = 0; v < venues.count; v++) {
        if (v == 0 || venues.keys[v][0] < best_key) { /* min(): the first of equal keys */
            best_key = venues.keys[v][0];
        }
    }
    if (venues.count > 0 && best_key == 0.0) {
        liq_release(&venues);
        Py_RETURN_NONE;
    }
    LiqKit kit = {
        (PyTypeObject *)args[7], (PyTypeObject *)args[8], label, args[9], sell, sell ? -best_key : best_key,
        &venues,
    };
    LiqOrder small_order[LIQ_SMALL_QUANTITIES];
    Py_ssize_t small_walk[LIQ_SMALL_QUANTITIES];
    LiqOrder *order = small_order;
    Py_ssize_t *walk = small_walk;
    PyObject *result = NULL;
    if (count > LIQ_SMALL_QUANTITIES) {
        order = PyMem_New(LiqOrder, count);
        walk = PyMem_New(Py_ssize_t, count);
        if (order == NULL || walk == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    result = PyTuple_New(count);
    if (result == NULL) {
        goto done;
    }
    if (venues.count == 0) {
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *fill = liq_unfilled(&kit, PyTuple_GET_ITEM(quantities, i));
            if (fill == NULL) {
                goto fail;
            }
            PyTuple_SET_ITEM(result, i, fill);
        }
        goto done;
    }
    double total = 0.0;
    for (Py_ssize_t v = 0; v < venues.count; v++) {
        total = total + venues.amounts[v][venues.n[v]];
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        order[i].q = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(quantities, i));
        order[i].i = i;
    }
    qsort(order, (size_t)count, sizeof(LiqOrder), liq_order_cmp);
    Py_ssize_t walking = 0; /* the quantities the books hold, smallest first */
    PyObject *whole = NULL; /* borrowed from result */
    for (Py_ssize_t j = 0; j < count; j++) {
        Py_ssize_t index = order[j].i;
        PyObject *quantity = PyTuple_GET_ITEM(quantities, index);
        PyObject *fill;
        if (order[j].q * liq_short_of <= total) {
            walk[walking++] = index;
            continue;
        }
        if (whole == NULL) {
            fill = whole = liq_whole(&kit, quantity, total);
        }
        else { /* the same figures, another quantity */
            PyObject *items[8] = {Py_NewRef(label), Py_NewRef(quantity)};
            for (Py_ssize_t k = 2; k < 8; k++) {
                items[k] = Py_NewRef(PyTuple_GET_ITEM(whole, k));
            }
            fill = liq_tuple(kit.fill_type, items, 8);
        }
        if (fill == NULL) {
            goto fail;
        }
        PyTuple_SET_ITEM(result, index, fill);
    }
    if (walking > 0) {
        int walked = liq_walk(&kit, quantities, walk, walking, result);
        if (walked < 0) {
            goto fail;
        }
        for (Py_ssize_t j = 0; walked == 0 && j < walking; j++) {
            /* The walk ran out of levels by a rounding: what is left gets the whole book. */
            Py_ssize_t index = walk[j];
            if (PyTuple_GET_ITEM(result, index) != NULL) {
                continue;
            }
            PyObject *fill = liq_whole(&kit, PyTuple_GET_ITEM(quantities, index), total);
            if (fill == NULL) {
                goto fail;
            }
            PyTuple_SET_ITEM(result, index, fill);
        }
    }
    goto done;

fail:
    Py_CLEAR(result);
done:
    if (order != small_order) {
        PyMem_Free(order);
        PyMem_Free(walk);
    }
    liq_release(&venues);
    return result;
}

static PyMethodDef methods[] = {
    {"apply_side", (PyCFunction)(void (*)(void))apply_side, METH_FASTCALL,
     "apply_side(side, levels, bids, bound) -> bool: apply float levels to one side of a numeric book."},
    {"apply_book", (PyCFunction)(void (*)(void))apply_book, METH_FASTCALL,
     "apply_book(bid_side, ask_side, bids, asks, bid_floor, ask_ceiling) -> int: a numeric diff, both sides."},
    {"apply_text_side", (PyCFunction)(void (*)(void))apply_text_side, METH_FASTCALL,
     "apply_text_side(side, text, levels, bids, bound) -> bool: apply venue-string levels to one side."},
    {"top_levels", (PyCFunction)(void (*)(void))top_levels, METH_FASTCALL,
     "top_levels(side, n, values=None) -> tuple: the values (in side, or values) of a SortedDict's first n keys."},
    {"merge_side", (PyCFunction)(void (*)(void))merge_side, METH_FASTCALL,
     "merge_side(runs, depth, descending, level_type) -> tuple: the best depth levels across runs."},
    {"venue_states", (PyCFunction)(void (*)(void))venue_states, METH_FASTCALL,
     "venue_states(state_type, names, books, healths, members, now, codes) -> tuple | None: venues' states."},
    {"check_book", (PyCFunction)(void (*)(void))check_book, METH_FASTCALL,
     "check_book(bids, asks) -> str | None: why a venue's top-N book cannot be trusted."},
    {"read_bybit_delta", (PyCFunction)read_bybit_delta, METH_O,
     "read_bybit_delta(payload) -> tuple | None: a Bybit delta's fields, or None for msgspec to decode."},
    {"read_levels", (PyCFunction)(void (*)(void))read_levels, METH_FASTCALL,
     "read_levels(payload, start, depth) -> tuple | None: the top levels of a compact JSON side."},
    {"encode_summary", (PyCFunction)(void (*)(void))encode_summary, METH_FASTCALL,
     "encode_summary(book, send_ns, clock) -> bytes: a MergedBook as an orderbook.Summary."},
    {"fix_entries", (PyCFunction)(void (*)(void))fix_entries, METH_FASTCALL,
     "fix_entries(levels, entry_type, venues) -> (bytes, int) | None: a side's FIX W entries."},
    {"byte_sum", (PyCFunction)byte_sum, METH_O,
     "byte_sum(data) -> int: the sum of a buffer's bytes (a FIX CheckSum before its modulo)."},
    {"crc32_digits", (PyCFunction)(void (*)(void))crc32_digits, METH_FASTCALL,
     "crc32_digits(first, second) -> int: CRC32 of the levels' strings without '.' and leading zeros."},
    {"crc32_interleaved", (PyCFunction)(void (*)(void))crc32_interleaved, METH_FASTCALL,
     "crc32_interleaved(bids, asks) -> int: CRC32 of 'price:amount' levels, bid and ask alternating."},
    {"side_sums", (PyCFunction)(void (*)(void))side_sums, METH_FASTCALL,
     "side_sums(side, negate) -> (keys, amounts, notionals) | None: a side's keys and running sums."},
    {"bbo_quotes", (PyCFunction)(void (*)(void))bbo_quotes, METH_FASTCALL,
     "bbo_quotes(bid_runs, ask_runs, quote_type, level_type, nan) -> (quotes, best_bid, best_ask) | None: "
     "each venue's quote and the best of each side."},
    {"band_figures", (PyCFunction)(void (*)(void))band_figures, METH_FASTCALL,
     "band_figures(bid_names, bid_keys, bid_amounts, ask_names, ask_keys, ask_amounts, mid, bands, band_type, "
     "amount_type) -> tuple | None: the liquidity bands around mid."},
    {"fill_figures", (PyCFunction)(void (*)(void))fill_figures, METH_FASTCALL,
     "fill_figures(names, sides, keys, amounts, notionals, quantities, sell, fill_type, amount_type, nan) "
     "-> tuple | None: the cost of filling each quantity on one side."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "dragonfly._speedups",
    "Hot-path functions in C (optional; see dragonfly/accel.py).",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&module_def);
}
