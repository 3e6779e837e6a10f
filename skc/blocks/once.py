"""Uses of a block object that must come once on any run-time path: a pipeline's handle taken, a producer handle's
`with` entered, an OnlineSoftmax finished. Each kind of use is recorded per object of this compilation, with where the
object was made (or started again) and the run-time loops open there, so a second use that runs after the first, or
one that runs anew each iteration of a loop the object was made outside of, is found."""
from __future__ import annotations

from skc import frontend
from skc.diagnostics import user_location


def _uses(kind: str) -> dict:
    """Of this compilation: {id(obj): (obj, where it was made, the run-time loops open there, [(where a use of `kind`
    was made, the run-time branches taken there, its frontend.path_point())])}."""
    return frontend.current().facts(f"{__name__}.{kind}")


@frontend.host
def note_made(obj, *kinds: str):
    """Where obj is made (or started again: its earlier uses forgotten), for the uses of each kind `repeated`
    checks."""
    made_at, loops = user_location(frontend.current().loc), frontend.runtime_loops()
    for kind in kinds:
        _uses(kind)[id(obj)] = (obj, made_at, loops, [])


def _runs_after(branches, earlier) -> bool:
    """Whether code under run-time `branches` (enclosing_conditions) surely runs after code under `earlier` ran:
    within each branch of `earlier`'s (its branches a prefix of these). Code under other branches may not run with it
    (the two arms of an `if`, `if w == 0` and `if w == 1` of two warpgroups, a branch that returns), so only this is
    refused."""
    return len(earlier) <= len(branches) and all(condition is other and taken == other_taken
                                                 for (condition, taken), (other, other_taken) in zip(branches, earlier))


@frontend.host
def earlier_use(obj, kind: str):
    """The use of `kind` of obj noted earlier that runs with the code here, as (where it was made, whether only its
    path going on to here says so), or None. An earlier use runs with it where it surely ran before it
    (`_runs_after`), or where every run-time path through it goes on to this code (frontend.always_follows: it is in
    an `if` branch that falls through to here); one in another branch, or in a branch that returns, is let be."""
    record = _uses(kind).get(id(obj))
    if record is None or record[0] is not obj:
        return None
    branches = frontend.enclosing_conditions()
    return next(((where, not _runs_after(branches, others)) for where, others, point in record[3]
                 if _runs_after(branches, others) or frontend.always_follows(point)), None)


@frontend.host
def repeated(obj, kind: str):
    """For a use of `kind` of obj that must be its only one: None where it is (then noted), else (where obj was made,
    (an earlier use that runs with this one, as `earlier_use` gives it), or None where this one runs anew each
    iteration of a run-time loop obj was made outside of)."""
    record = _uses(kind).get(id(obj))
    if record is None or record[0] is not obj:
        return None
    _, made_at, loops, used = record
    earlier = earlier_use(obj, kind)
    if earlier is None and all(loop in loops for loop in frontend.runtime_loops()):
        used.append((user_location(frontend.current().loc), frontend.enclosing_conditions(), frontend.path_point()))
        return None
    return made_at, earlier


def falls_through(earlier) -> str:
    """What the error about a second use adds where the first is in a run-time branch that falls through to it."""
    return ", in a run-time `if` branch that goes on to this line" if earlier and earlier[1] else ""
