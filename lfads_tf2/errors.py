"""The project's error classes: every problem a user can cause, reported as one line.

The commands (run_lfads, lfads_tune, lfads_score, the data converters) catch these and
print `error: <message>` with exit status 2, without a traceback (--debug shows one);
any other exception is a bug and keeps its traceback.
"""
import re

import numpy as np


class DataError(ValueError):
    """Bad input data, raised by the readers and checks of lfads_tf2.data, utils and
    lfads_score before any work is done. The user sees '<file>: <key>: <problem>'."""


class LfadsError(RuntimeError):
    """A save folder, checkpoint or run that cannot be used as asked (a missing or
    unreadable checkpoint, a locked folder, a kind the model cannot run), raised by
    lfads_tf2.train and lfads_tf2.evaluate. The user sees the one-line reason."""


class UsageError(ValueError):
    """A bad flag value, raised by lfads_tf2.train.hparams and the commands' own flag
    checks. The user sees '--flag=value: problem'."""


ONE_LINE_ERRORS = (DataError, LfadsError, UsageError)


def one_line(text):
    """Collapses line breaks so that every message stays on one line."""
    return re.sub(r"\s*[\r\n]+\s*", " ", str(text)).strip()


def data_error(path, key, problem):
    """A DataError with the message '<path>: <key>: <problem>'."""
    return DataError(one_line("%s: %s: %s" % (path, key, problem)))


def bad_values(mask):
    """Describes a boolean mask of bad entries: count and first index."""
    count = int(np.count_nonzero(mask))
    first = np.unravel_index(int(np.argmax(mask)), mask.shape)
    return "%d value(s), first at index %s" % (count, tuple(int(i) for i in first))


def note(path, key, text):
    """A one-line note '<path>: <key>: <text>' for the user (not an error)."""
    return one_line("%s: %s: %s" % (path, key, text))


class CommandError(Exception):
    """A wrong command line (the number of positional arguments), raised by lfads_tf2.cli
    for every command. The user sees the one-line reason with status 2."""


class InputError(Exception):
    """A file named on the command line that cannot be read as what it should be (an
    output or data file for lfads_score), raised by lfads_tf2.score. One line."""


class SpaceError(ValueError):
    """A bad search-space file, raised by lfads_tf2.search.space. One line."""


class SearchError(Exception):
    """A bad setting of lfads_tune's own flags, raised by lfads_tf2.search. One line."""


class ImportProblem(Exception):
    """A source that lfads_import_original cannot import (an original save folder or
    model_params file), raised by lfads_tf2.train.import_original. One line."""
