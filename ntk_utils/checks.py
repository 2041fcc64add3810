"""Small value checks shared by every owner of a parameter (sections, Setup, params, grid).

A leaf module (it imports nothing of ntk_utils), so that the modules that check values never
import each other for these rules. Each list-returning check gives the problems it finds
(empty when the value is fine), as sentences naming the parameter.
"""


def is_int(v):
    """An int that is not a bool (YAML's ``true`` is no class id, seed or size)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v):
    """An int or float that is not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def sizes(name, value):
    """An increasing list of at least 2 positive integers (training-set sizes, widths...)."""
    if not (isinstance(value, list) and len(value) >= 2 and all(is_int(n) and n > 0 for n in value)):
        return [f"{name}: {value!r} must be a list of at least 2 positive integers"]
    return [] if all(a < b for a, b in zip(value, value[1:])) else [f"{name}: {value!r} must be increasing"]


def positive(name, value, low=1):
    """An integer >= low, or a non-empty list of them."""
    ok = (is_int(value) and value >= low) if not isinstance(value, list) else \
        bool(value) and all(is_int(v) and v >= low for v in value)
    return [] if ok else [f"{name}: {value!r} must be an integer >= {low} (or a non-empty list of them)"]


def rate_table(name, value):
    """A {positive integer width: positive learning rate} table (notebook 02's per-width rates)."""
    if not isinstance(value, dict):
        return [f"{name}: {value!r} must be a {{width: learning rate}} table"]
    return [f"{name}: {w!r}: {lr!r} must map a positive integer width to a positive rate"
            for w, lr in value.items() if not (is_int(w) and w > 0 and is_number(lr) and lr > 0)]


def one_of(name, value, allowed):
    return [] if value in allowed else [f"{name}: {value!r} must be one of {list(allowed)}"]
