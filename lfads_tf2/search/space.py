"""The search space of `lfads_tune`: a small YAML or JSON file keyed by run_lfads flag names.

    learning_rate_init: {loguniform: [1e-4, 1e-2]}
    keep_prob: {uniform: [0.7, 1.0]}
    factors_dim: {randint: [10, 40]}
    co_dim: {choice: [0, 1, 2]}

Each entry is one flag and one distribution (DISTRIBUTIONS). Everything here is checked
before Ray starts, and every problem is one line naming the file and the flag
(SpaceError): a name that is no flag or no hyperparameter, a distribution that does not
exist or does not fit the flag's type, bounds in the wrong order, and values the flag
cannot take (each bound and choice, and their combinations, go through the same checks
as run_lfads's flags, via the `check` callable the command passes in).

Reading YAML needs PyYAML (the `tune` extra); JSON needs nothing. YAML 1.1 reads `1e-4`
(no decimal point) as a string: a string that is a number is read as that number for a
float flag.
"""
import collections
import itertools
import json
import math

from lfads_tf2.errors import SpaceError

# name -> (flag types it fits, what its list holds)
DISTRIBUTIONS = collections.OrderedDict([
    ("uniform", (("float",), "[low, high]")),
    ("loguniform", (("float",), "[low, high], low > 0")),
    ("randint", (("int",), "[low, high], both included")),
    ("choice", (("float", "int", "bool", "string"), "[value, value, ...]")),
])

# Above this many combinations of bounds and choices, each flag's values are checked
# alone (the combinations would take too long to enumerate).
MAX_COMBINATIONS = 4096

Param = collections.namedtuple("Param", "name dist args")  # args: [low, high] or choices


def describe(param):
    """The entry as written, e.g. `{uniform: [0.7, 1.0]}`."""
    return "{%s: [%s]}" % (param.dist, ", ".join(_text(v) for v in param.args))


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "%g" % value
    return str(value)


def read_file(path):
    """The file's mapping (flag -> {distribution: list}) as Python objects."""
    prefix = "search space %s" % path
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise SpaceError("%s: cannot be read (%s)" % (prefix, e.strerror or e)) from None
    if path.lower().endswith(".json") or text.lstrip().startswith("{"):
        try:
            raw = json.loads(text)
        except ValueError as e:
            raise SpaceError("%s: not valid JSON (%s)" % (prefix, e)) from None
    else:
        try:
            import yaml
        except ImportError:
            raise SpaceError("%s: reading YAML needs PyYAML (pip install -e \".[tune]\"), "
                             "or write the file as JSON" % prefix) from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as e:
            where = getattr(e, "problem_mark", None)
            line = " at line %d" % (where.line + 1) if where is not None else ""
            raise SpaceError("%s: not valid YAML%s (%s)"
                             % (prefix, line, getattr(e, "problem", None) or e)) from None
    if not isinstance(raw, dict) or not raw:
        raise SpaceError("%s: expected one or more lines `flag: {distribution: [...]}`"
                         % prefix)
    return raw


def parse(raw, path, flag_types, searchable):
    """[Param] from read_file's mapping.

    flag_types: {flag name: absl type name ("float", "int", "bool", "string")} of every
      run_lfads flag; searchable: the names a search may set.
    """
    import difflib
    prefix = "search space %s" % path if path else "search space"
    params = []
    for name, entry in raw.items():
        where = "%s: %s" % (prefix, name)
        if not isinstance(name, str) or name not in flag_types:
            close = difflib.get_close_matches(str(name), list(flag_types), n=1, cutoff=0.7)
            raise SpaceError("%s: unknown flag%s" % (
                where, " (did you mean %s?)" % close[0] if close else ""))
        if name not in searchable:
            raise SpaceError("%s: not a hyperparameter a search may set (give it as a flag "
                             "of lfads_tune instead; lfads_tune --help lists the ones it "
                             "searches)" % where)
        if not isinstance(entry, dict) or len(entry) != 1:
            raise SpaceError("%s: expected {distribution: [...]} with one of %s"
                             % (where, ", ".join(DISTRIBUTIONS)))
        dist, args = next(iter(entry.items()))
        if dist not in DISTRIBUTIONS:
            raise SpaceError("%s: unknown distribution '%s' (expected one of %s)"
                             % (where, dist, ", ".join(DISTRIBUTIONS)))
        types, shape = DISTRIBUTIONS[dist]
        kind = flag_types[name]
        if kind not in types:
            fits = [d for d, (t, _) in DISTRIBUTIONS.items() if kind in t]
            raise SpaceError("%s: %s does not fit a flag of type %s (use %s)"
                             % (where, dist, kind, " or ".join(fits)))
        if not isinstance(args, list) or not args:
            raise SpaceError("%s: %s takes a list %s" % (where, dist, shape))
        values = [_value(where, kind, a) for a in args]
        if dist == "choice":
            if len(set(map(repr, values))) != len(values):
                raise SpaceError("%s: choice lists a value twice" % where)
        else:
            if len(values) != 2:
                raise SpaceError("%s: %s takes a list %s, got %d values"
                                 % (where, dist, shape, len(values)))
            low, high = values
            if dist == "randint" and not low <= high:
                raise SpaceError("%s: {randint: [%d, %d]}: low must not be above high"
                                 % (where, low, high))
            if dist != "randint" and not low < high:
                raise SpaceError("%s: {%s: [%g, %g]}: low must be below high"
                                 % (where, dist, low, high))
            if dist == "loguniform" and not low > 0:
                raise SpaceError("%s: {loguniform: [%g, %g]}: low must be positive"
                                 % (where, low, high))
        params.append(Param(name, dist, values))
    return params


def _value(where, kind, value):
    """One bound or choice as the flag's type, or a SpaceError."""
    if kind == "float":
        if isinstance(value, str):
            try:
                value = float(value)  # YAML 1.1 reads 1e-4 as a string
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise SpaceError("%s: %r is not a finite number" % (where, value))
        return float(value)
    if kind == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpaceError("%s: %r is not an integer" % (where, value))
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise SpaceError("%s: %r is not true or false" % (where, value))
        return value
    if not isinstance(value, str):
        raise SpaceError("%s: %r is not a string" % (where, value))
    return value


def extremes(param):
    """The values that bound what the entry can draw: its bounds, or every choice."""
    return list(param.args)


def check_values(params, path, check):
    """Runs check(values: {flag: value}) on each flag's extremes, then on their
    combinations (up to MAX_COMBINATIONS); check raises an exception whose first line
    says what is wrong. Raises SpaceError."""
    prefix = "search space %s" % path if path else "search space"
    for param in params:
        for value in extremes(param):
            try:
                check({param.name: value})
            except Exception as e:  # noqa: BLE001 - the flags' own one-line errors
                raise SpaceError("%s: %s %s: %s" % (prefix, param.name, describe(param),
                                                    _first_line(e))) from None
    count = 1
    for param in params:
        count *= len(extremes(param))
    if len(params) < 2 or count > MAX_COMBINATIONS:
        return
    for combo in itertools.product(*[extremes(p) for p in params]):
        values = {p.name: v for p, v in zip(params, combo)}
        try:
            check(values)
        except Exception as e:  # noqa: BLE001
            raise SpaceError("%s: the combination %s: %s" % (
                prefix, ", ".join("%s=%s" % (k, _text(v)) for k, v in values.items()),
                _first_line(e))) from None


def _first_line(e):
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def check_perturbable(params, path, perturbable):
    """Population-based training changes hyperparameters of running trials: every
    flag must be one whose value the graph reads from a variable (lfads_tf2/model/tunables.py)."""
    prefix = "search space %s" % path if path else "search space"
    for param in params:
        if param.name not in perturbable:
            raise SpaceError(
                "%s: %s: --search=pbt changes hyperparameters of running trials, and %s "
                "cannot change in a running model; use --search=random, or search only "
                "%s" % (prefix, param.name, param.name, ", ".join(perturbable)))


def clamp(param, value):
    """A perturbed value brought back into the entry's range (bounds of uniform,
    loguniform and randint); a choice is left as it is."""
    if param.dist == "choice":
        return value
    low, high = param.args
    value = min(max(value, low), high)
    return int(round(value)) if param.dist == "randint" else value
