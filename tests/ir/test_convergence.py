"""The convergence analysis: which shuffles and votes every thread of their warp reaches together."""
from skc.ir import parse_module, verify
from skc.ir.passes.convergence import (InLoop, collectives_in_branches, collectives_of_live_lanes,
                                       converged_collectives, warp_groups)

HEAD = ("kernel @k(%0: ptr<global>, %1: i32) {block = [16, 1, 1], shared_bytes = 0} {\n"
        "  %2 = var.alloc : var<i32>\n  %3 = gpu.thread_id {dim = 0} : i32\n  %4 = gpu.block_id {dim = 0} : i32\n"
        "  %5 = arith.constant {value = 1} : i32\n")


def converged(body: str) -> list:
    """For each collective of the kernel, in program order: whether the analysis finds it converged."""
    module = parse_module(HEAD + body + "}\n")
    verify(module)
    fn = module.function()
    found = converged_collectives(fn)
    return [id(op) in found for op in fn.walk() if op.name in ("gpu.shuffle", "gpu.vote")]


def verdicts(body: str) -> list:
    """For each collective, in program order: "all" (every thread of the warp together), "live" (every thread not
    exited by a return of the kernel), "branch k" (the lanes of those that took k branches on the way) or
    "apart"."""
    module = parse_module(HEAD + body + "}\n")
    verify(module)
    fn = module.function()
    every, live, (split, _) = converged_collectives(fn), collectives_of_live_lanes(fn), collectives_in_branches(fn)
    return ["all" if id(op) in every else "live" if id(op) in live else _split(split[id(op)]) if id(op) in split
            else "apart" for op in fn.walk() if op.name in ("gpu.shuffle", "gpu.vote")]


def _split(state) -> str:
    root, path = state
    inside = "in loop" if isinstance(root, InLoop) else ""
    return f"{inside}{', ' if inside and path else ''}{f'branch {len(path)}' if path else ''}"


def test_top_level_collectives_are_converged():
    assert converged("  %6 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n"
                     "  %7 = arith.cmp %3, %1 {pred = \"lt\"} : i1\n  %8 = gpu.vote %7 {mode = \"any\"} : i1\n") \
        == [True, True]


def test_a_branch_on_the_thread_id_is_not_but_one_on_the_block_id_is():
    assert converged("  %6 = arith.cmp %3, %1 {pred = \"lt\"} : i1\n"
                     "  scf.if %6 {\n    %7 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n  } {\n  }\n"
                     "  %8 = arith.cmp %4, %1 {pred = \"lt\"} : i1\n"
                     "  scf.if %8 {\n    %9 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n  } {\n  }\n") \
        == [False, True]


def test_after_a_loop_of_differing_trip_counts_the_warp_is_together_again():
    # while i < n: i += 1, with i starting at the thread id; then a shuffle (the case the GPU got wrong)
    body = ("  var.store %2, %3\n  scf.loop {label = \"L1\"} {\n    %6 = var.load %2 : i32\n"
            "    %7 = arith.cmp %6, %1 {pred = \"lt\"} : i1\n    %8 = arith.not %7 : i1\n"
            "    scf.if %8 {\n      scf.break {label = \"L1\"}\n    } {\n    }\n"
            "    %9 = gpu.shuffle %6, %5 {mode = \"xor\"} : i32\n    %10 = arith.add %6, %5 : i32\n"
            "    var.store %2, %10\n  }\n  %11 = var.load %2 : i32\n  %12 = gpu.shuffle %11, %5 {mode = \"xor\"} : i32\n")
    assert converged(body) == [False, True]


def test_a_loop_with_the_same_bounds_everywhere_keeps_its_body_together():
    body = ("  %6 = arith.constant {value = 0} : i32\n  scf.for %6, %1, %5 {label = \"L1\"} { ^(%7: i32)\n"
            "    %8 = gpu.shuffle %7, %5 {mode = \"xor\"} : i32\n  }\n"
            "  scf.for %6, %3, %5 {label = \"L2\"} { ^(%9: i32)\n    %10 = gpu.shuffle %9, %5 {mode = \"xor\"} : i32\n"
            "  }\n")
    assert converged(body) == [True, False]


def test_a_return_by_some_threads_leaves_the_rest_of_the_kernel_apart():
    body = ("  %6 = arith.cmp %3, %1 {pred = \"lt\"} : i1\n  scf.if %6 {\n    func.return\n  } {\n  }\n"
            "  %7 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n")
    assert converged(body) == [False]


def test_a_return_from_an_inlined_function_rejoins_at_its_block_end():
    body = ("  scf.block {label = \"F1\"} {\n    %6 = arith.cmp %3, %1 {pred = \"lt\"} : i1\n"
            "    scf.if %6 {\n      scf.break {label = \"F1\"}\n    } {\n    }\n"
            "    %7 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n  }\n"
            "  %8 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n")
    assert converged(body) == [False, True]


def test_a_branch_on_a_var_some_threads_set_differently_is_not():
    body = ("  var.store %2, %4\n  %6 = arith.cmp %3, %1 {pred = \"lt\"} : i1\n"
            "  scf.if %6 {\n    var.store %2, %5\n  } {\n  }\n"
            "  %7 = var.load %2 : i32\n  %8 = arith.cmp %7, %1 {pred = \"eq\"} : i1\n"
            "  scf.if %8 {\n    %9 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n  } {\n  }\n")
    assert converged(body) == [False]
    # the same var stored by every thread together, with a value alike on all of them: converged
    body = ("  var.store %2, %4\n  %6 = var.load %2 : i32\n  %7 = arith.cmp %6, %1 {pred = \"eq\"} : i1\n"
            "  scf.if %7 {\n    %8 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n  } {\n  }\n")
    assert converged(body) == [True]


LOOP_TOP = ("  %6 = arith.constant {value = 0} : i32\n"
            "  scf.for %6, %1, %5 {label = \"L1\"} { ^(%7: i32)\n    %8 = gpu.shuffle %7, %5 {mode = \"xor\"} : i32\n"
            "    %9 = arith.cmp %3, %7 {pred = \"lt\"} : i1\n")


def test_a_return_by_some_threads_in_a_loop_leaves_its_later_iterations_apart():
    # for i in range(n): shuffle; if t < i: return -- the second iteration runs without the threads that returned
    body = LOOP_TOP + "    scf.if %9 {\n      func.return\n    } {\n    }\n  }\n"
    assert converged(body) == [False]


def test_an_inlined_function_returning_from_its_loop_leaves_the_loop_apart():
    # a helper's `for i in range(n): s = shfl(...); if ...: return s`: the return leaves the helper's block, out of
    # the loop; the warp is together again after the block
    body = ("  scf.block {label = \"F1\"} {\n" + LOOP_TOP + "    scf.if %9 {\n      scf.break {label = \"F1\"}\n"
            "    } {\n    }\n  }\n  }\n  %10 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n")
    assert converged(body) == [False, True]


def test_a_continue_of_an_outer_loop_leaves_the_inner_loop_apart():
    body = ("  %6 = arith.constant {value = 0} : i32\n  scf.for %6, %1, %5 {label = \"L1\"} { ^(%7: i32)\n"
            "    %8 = gpu.shuffle %7, %5 {mode = \"xor\"} : i32\n"
            "    scf.for %6, %1, %5 {label = \"L2\"} { ^(%9: i32)\n      %10 = gpu.shuffle %9, %5 {mode = \"xor\"} : i32\n"
            "      %11 = arith.cmp %3, %9 {pred = \"lt\"} : i1\n"
            "      scf.if %11 {\n        scf.continue {label = \"L1\"}\n      } {\n      }\n    }\n  }\n")
    assert converged(body) == [True, False]


def test_after_returns_by_some_threads_the_lanes_still_running_are_together():
    # if t < n: return; shuffle -- the threads still running all get there (the bounds check before a reduction)
    body = ("  %6 = arith.cmp %3, %1 {pred = \"lt\"} : i1\n  scf.if %6 {\n    func.return\n  } {\n  }\n"
            "  %7 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n"
            "  %8 = arith.cmp %4, %1 {pred = \"lt\"} : i1\n"
            "  scf.if %8 {\n    %9 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n  } {\n  }\n"
            "  scf.if %6 {\n    %10 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n  } {\n  }\n")
    assert verdicts(body) == ["live", "live", "branch 1"]   # (the third: the live lanes that took the branch)


def test_a_return_in_a_loop_leaves_its_later_iterations_to_the_live_lanes():
    body = (LOOP_TOP + "    scf.if %9 {\n      func.return\n    } {\n    }\n  }\n"
            "  %10 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n")
    assert verdicts(body) == ["live", "live"]
    # a break beside the return: some live threads leave the loop too, and wait after it, where the live lanes
    # are together again
    body = (LOOP_TOP + "    scf.if %9 {\n      func.return\n    } {\n    }\n"
            "    %10 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n    scf.if %10 {\n      scf.break {label = \"L1\"}\n"
            "    } {\n    }\n  }\n  %11 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n")
    assert verdicts(body) == ["apart", "live"]


def test_an_inlined_functions_return_is_no_exit():
    # the helper's threads that return wait at its block's end: a shuffle inside the block after it is apart
    body = ("  scf.block {label = \"F1\"} {\n    %6 = arith.cmp %3, %1 {pred = \"lt\"} : i1\n"
            "    scf.if %6 {\n      scf.break {label = \"F1\"}\n    } {\n    }\n"
            "    %7 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n  }\n")
    assert verdicts(body) == ["apart"]


def test_inside_branches_the_lanes_that_took_them_are_known():
    # if t < n: shuffle; if t > 1: shuffle -- each branch's lanes are named by a ballot of its condition
    body = ("  %6 = arith.cmp %3, %1 {pred = \"lt\"} : i1\n"
            "  scf.if %6 {\n    %7 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n"
            "    %8 = arith.cmp %3, %5 {pred = \"gt\"} : i1\n"
            "    scf.if %8 {\n      %9 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n    } {\n    }\n"
            "  } {\n    %10 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n  }\n")
    assert verdicts(body) == ["branch 1", "branch 2", "branch 1"]


def test_a_break_inside_a_branch_leaves_the_loop_to_the_lanes_still_in_it():
    # for i in range(n): shuffle; if t < i: break -- the branch's lanes leave, the later iterations run without them:
    # the loop's lanes are named by a mask the branch's ballot takes them out of
    body = LOOP_TOP + "    scf.if %9 {\n      scf.break {label = \"L1\"}\n    } {\n    }\n  }\n"
    assert verdicts(body) == ["in loop"]
    # inside a branch in the loop, its lanes there; after the loop, every thread again
    body = (LOOP_TOP + "    scf.if %9 {\n      scf.break {label = \"L1\"}\n    } {\n    }\n"
            "    %10 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "    scf.if %10 {\n      %11 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n    } {\n    }\n  }\n"
            "  %12 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n")
    assert verdicts(body) == ["in loop", "in loop, branch 1", "all"]
    # a break with a branch before it in its side: the lanes that break there wait at the outer branch's join, where
    # a ballot over the loop's lanes names those going on (WarpGroups.gathers)
    body = (LOOP_TOP + "    scf.if %9 {\n      %10 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "      scf.if %10 {\n        scf.break {label = \"L1\"}\n      } {\n      }\n"
            "      scf.break {label = \"L1\"}\n    } {\n    }\n  }\n")
    assert verdicts(body) == ["in loop"]
    # a continue some threads take after it: those passed the break's branch, and come back at the next iteration
    body = (LOOP_TOP + "    scf.if %9 {\n      scf.break {label = \"L1\"}\n    } {\n    }\n"
            "    %10 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "    scf.if %10 {\n      scf.continue {label = \"L1\"}\n    } {\n    }\n  }\n")
    assert verdicts(body) == ["in loop"]
    # a continue some threads take before it: those would not see the break's ballot (apart, as before)
    body = (LOOP_TOP + "    %10 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "    scf.if %10 {\n      scf.continue {label = \"L1\"}\n    } {\n    }\n"
            "    scf.if %9 {\n      scf.break {label = \"L1\"}\n    } {\n    }\n  }\n")
    assert verdicts(body) == ["apart"]
    # a loop wholly inside a branch, left by every lane that took the branch together: its body keeps them
    body = ("  %6 = arith.cmp %3, %1 {pred = \"lt\"} : i1\n  scf.if %6 {\n"
            "    scf.loop {label = \"L1\"} {\n      %7 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n"
            "      scf.break {label = \"L1\"}\n    }\n  } {\n  }\n")
    assert verdicts(body) == ["branch 1"]


def test_a_branch_on_lane_0s_value_keeps_each_warp_together():
    # the warp roles' test: w = shfl_idx(t / 128, 0) is alike on every lane of a warp, so `if w == 0` splits no warp
    # (a branch mask there would be a register held through the consumers' loop: attention spilled with one)
    body = ("  %6 = arith.constant {value = 128} : i32\n  %7 = arith.div %3, %6 : i32\n"
            "  %8 = arith.constant {value = 0} : i32\n  %9 = gpu.shuffle %7, %8 {mode = \"idx\"} : i32\n"
            "  %10 = arith.cmp %9, %8 {pred = \"eq\"} : i1\n"
            "  scf.if %10 {\n    %11 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n  } {\n  }\n"
            "  %12 = gpu.shuffle %7, %5 {mode = \"idx\"} : i32\n  %13 = arith.cmp %12, %8 {pred = \"eq\"} : i1\n"
            "  scf.if %13 {\n    %14 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n  } {\n  }\n")
    assert verdicts(body) == ["all", "all", "all", "branch 1"]   # (lane 1's value: no such rule)


def test_a_lane_0_shuffle_in_a_loop_some_threads_leave_is_not_alike():
    # for i in range(n): w = shfl_idx(t, 0); if w == 0: shuffle; if t < i: return -- the first walk of the body
    # finds w's shuffle converged; the walk for the later iterations (the live lanes: lane 0 may have exited) does
    # not, so w no longer counts as alike and the branch on it splits the live lanes
    body = ("  %6 = arith.constant {value = 0} : i32\n  scf.for %6, %1, %5 {label = \"L1\"} { ^(%7: i32)\n"
            "    %8 = gpu.shuffle %3, %6 {mode = \"idx\"} : i32\n    %9 = arith.cmp %8, %6 {pred = \"eq\"} : i1\n"
            "    scf.if %9 {\n      %10 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n    } {\n    }\n"
            "    %11 = arith.cmp %3, %7 {pred = \"lt\"} : i1\n"
            "    scf.if %11 {\n      func.return\n    } {\n    }\n  }\n")
    assert verdicts(body) == ["live", "branch 1"]


def test_after_a_continue_in_a_branch_the_rest_of_the_iteration_has_the_other_sides_lanes():
    # for i in range(n): shuffle; if t < i: continue; shuffle; if t > n: continue; shuffle -- each continue's lanes
    # skip the rest of the iteration: it runs with the other side's lanes (a ballot of the condition names them);
    # the next iteration, and after the loop, every thread again
    body = (LOOP_TOP + "    scf.if %9 {\n      scf.continue {label = \"L1\"}\n    } {\n    }\n"
            "    %10 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n    %11 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "    scf.if %11 {\n    } {\n      scf.continue {label = \"L1\"}\n    }\n"
            "    %12 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n  }\n  %13 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n")
    assert verdicts(body) == ["all", "branch 1", "branch 2", "all"]
    # in a loop some lanes leave by a break: the loop's lanes, less those that continued
    body = (LOOP_TOP + "    scf.if %9 {\n      scf.break {label = \"L1\"}\n    } {\n    }\n"
            "    %10 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "    scf.if %10 {\n      scf.continue {label = \"L1\"}\n    } {\n    }\n"
            "    %11 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n  }\n")
    assert verdicts(body) == ["in loop", "in loop, branch 1"]
    # a continue inside a branch of a branch: after the outer one, the lanes going on, named by a ballot at its join
    # where the continuing lanes wait (WarpGroups.gathers, side 2); one after work some lanes do first in its side
    # likewise
    body = (LOOP_TOP + "    scf.if %9 {\n      %10 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "      scf.if %10 {\n        scf.continue {label = \"L1\"}\n      } {\n      }\n"
            "      %11 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n    } {\n    }\n"
            "    %12 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n  }\n")
    assert verdicts(body) == ["all", "branch 2", "branch 1"]
    body = (LOOP_TOP + "    scf.if %9 {\n      %10 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "      scf.if %10 {\n        scf.continue {label = \"L1\"}\n      } {\n      }\n"
            "      scf.continue {label = \"L1\"}\n    } {\n    }\n"
            "    %11 = gpu.shuffle %3, %5 {mode = \"xor\"} : i32\n  }\n")
    assert verdicts(body) == ["all", "branch 1"]


def _verdicts_and_gathers(body: str) -> tuple:
    """verdicts(body), and for each if whose breaking lanes gather at its join, in program order: whether it is the
    outermost (entered by the loop's lanes themselves)."""
    module = parse_module(HEAD + body + "}\n")
    verify(module)
    gathers = warp_groups(module.function()).gathers
    return verdicts(body), [gathers[id(op)][2] for op in module.function().walk() if id(op) in gathers]


SHUFFLE = "gpu.shuffle %3, %5 {mode = \"xor\"} : i32"


def test_a_break_nested_in_branches_leaves_the_loop_to_the_lanes_not_breaking():
    # for i in range(n): shuffle; if t < i: (if t > n: break); shuffle; shuffle -- inside the branch after the break's
    # branch, its other side's lanes (as after a continue); after the branch, the loop's lanes, named by a ballot of
    # those not breaking, taken at its join where the breaking lanes wait; after the loop, every thread
    body = (LOOP_TOP + "    scf.if %9 {\n      %10 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "      scf.if %10 {\n        scf.break {label = \"L1\"}\n      } {\n      }\n"
            f"      %11 = {SHUFFLE}\n    }} {{\n    }}\n    %12 = {SHUFFLE}\n  }}\n  %13 = {SHUFFLE}\n")
    assert _verdicts_and_gathers(body) == (["in loop", "in loop, branch 2", "in loop", "all"], [True])
    # in the else side
    body = (LOOP_TOP + "    scf.if %9 {\n    } {\n      %10 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "      scf.if %10 {\n      } {\n        scf.break {label = \"L1\"}\n      }\n"
            f"      %11 = {SHUFFLE}\n    }}\n    %12 = {SHUFFLE}\n  }}\n")
    assert _verdicts_and_gathers(body) == (["in loop", "in loop, branch 2", "in loop"], [True])


def test_a_break_deeper_or_on_both_sides_gathers_its_lanes_at_each_branchs_join():
    # if t < i: (if t > n: (if t > 1: break); shuffle); shuffle -- three deep: the middle branch gathers its lanes
    # too, and the shuffle after it runs with those past it (the third element of the path, side 2)
    body = (LOOP_TOP + "    scf.if %9 {\n      %10 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "      scf.if %10 {\n        %11 = arith.cmp %3, %5 {pred = \"gt\"} : i1\n"
            "        scf.if %11 {\n          scf.break {label = \"L1\"}\n        } {\n        }\n"
            f"        %12 = {SHUFFLE}\n      }} {{\n      }}\n      %13 = {SHUFFLE}\n    }} {{\n    }}\n"
            f"    %14 = {SHUFFLE}\n  }}\n")
    assert _verdicts_and_gathers(body) == (["in loop", "in loop, branch 3", "in loop, branch 2", "in loop"],
                                           [True, False])
    # breaks on both sides of a branch inside the loop's: gathered at its join
    body = (LOOP_TOP + "    scf.if %9 {\n      %10 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "      scf.if %10 {\n        scf.break {label = \"L1\"}\n      } {\n"
            "        scf.break {label = \"L1\"}\n      }\n    } {\n    }\n"
            f"    %11 = {SHUFFLE}\n  }}\n")
    assert _verdicts_and_gathers(body) == (["in loop", "in loop"], [True])


def test_a_nested_break_beside_other_jumps_stays_unnamed():
    # a continue in the same branch: the lanes that continue would miss the ballot at its join (apart, as before)
    body = (LOOP_TOP + "    scf.if %9 {\n      %10 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "      scf.if %10 {\n        scf.break {label = \"L1\"}\n      } {\n"
            "        scf.continue {label = \"L1\"}\n      }\n    } {\n    }\n"
            f"    %11 = {SHUFFLE}\n  }}\n")
    assert verdicts(body) == ["apart", "apart"]
    # after a continue some lanes took: those would not see the ballot (apart, as a direct break there)
    body = (LOOP_TOP + "    %10 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "    scf.if %10 {\n      scf.continue {label = \"L1\"}\n    } {\n    }\n"
            "    scf.if %9 {\n      %11 = arith.cmp %3, %5 {pred = \"gt\"} : i1\n"
            "      scf.if %11 {\n        scf.break {label = \"L1\"}\n      } {\n      }\n    } {\n    }\n"
            f"    %12 = {SHUFFLE}\n  }}\n")
    assert verdicts(body) == ["apart", "apart"]
    # a break of the loop inside an inner loop in the branch (an inlined function's jump): not through ifs alone
    body = (LOOP_TOP + "    scf.if %9 {\n      scf.loop {label = \"L2\"} {\n"
            "        %10 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "        scf.if %10 {\n          scf.break {label = \"L1\"}\n        } {\n        }\n"
            "        scf.break {label = \"L2\"}\n      }\n    } {\n    }\n"
            f"    %11 = {SHUFFLE}\n  }}\n")
    assert verdicts(body) == ["apart", "apart"]


def _gathers(body: str) -> list:
    """For each if whose jumping lanes gather at its join, in program order: (outermost, kind)."""
    module = parse_module(HEAD + body + "}\n")
    verify(module)
    gathers = warp_groups(module.function()).gathers
    return [gathers[id(op)][2:] for op in module.function().walk() if id(op) in gathers]


def test_a_continue_nested_in_branches_gathers_its_lanes_at_the_outer_branchs_join():
    # for i in range(n): if t < i: (if t > n: (if t > 1: continue); shuffle) else: (if t > 1: {} else: continue);
    # shuffle -- three deep and in an else side: each branch around the continues gathers its lanes at its join,
    # where a ballot names those going on (side 2); the loop's lanes are the same every iteration (no loop mask)
    body = (LOOP_TOP + "    scf.if %9 {\n      %10 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "      scf.if %10 {\n        %11 = arith.cmp %3, %5 {pred = \"gt\"} : i1\n"
            "        scf.if %11 {\n          scf.continue {label = \"L1\"}\n        } {\n        }\n"
            f"        %12 = {SHUFFLE}\n      }} {{\n        %13 = arith.cmp %3, %5 {{pred = \"gt\"}} : i1\n"
            "        scf.if %13 {\n        } {\n          scf.continue {label = \"L1\"}\n        }\n      }\n"
            f"      %14 = {SHUFFLE}\n    }} {{\n    }}\n    %15 = {SHUFFLE}\n  }}\n  %16 = {SHUFFLE}\n")
    assert verdicts(body) == ["all", "branch 3", "branch 2", "branch 1", "all"]
    assert _gathers(body) == [(False, "continue"), (False, "continue")]
    # in a loop some lanes leave by a break before it: the loop's lanes that went on past the branch
    body = (LOOP_TOP + "    scf.if %9 {\n      scf.break {label = \"L1\"}\n    } {\n    }\n"
            "    %10 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "    scf.if %10 {\n      %11 = arith.cmp %3, %5 {pred = \"gt\"} : i1\n"
            "      scf.if %11 {\n        scf.continue {label = \"L1\"}\n      } {\n      }\n    } {\n    }\n"
            f"    %12 = {SHUFFLE}\n  }}\n")
    assert verdicts(body) == ["in loop", "in loop, branch 1"]
    # in an inner loop: the continue is the inner loop's; the outer loop's lanes are all there after it
    body = (LOOP_TOP + "    scf.for %6, %1, %5 {label = \"L2\"} { ^(%10: i32)\n"
            "      %11 = arith.cmp %3, %10 {pred = \"lt\"} : i1\n"
            "      scf.if %11 {\n        %12 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "        scf.if %12 {\n          scf.continue {label = \"L2\"}\n        } {\n        }\n"
            f"      }} {{\n      }}\n      %13 = {SHUFFLE}\n    }}\n    %14 = {SHUFFLE}\n  }}\n")
    assert verdicts(body) == ["all", "branch 1", "all"]


def test_a_nested_continue_beside_other_jumps_stays_unnamed():
    # a break in the same branch: the lanes that break and those that continue go different ways from its join
    body = (LOOP_TOP + "    scf.if %9 {\n      %10 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "      scf.if %10 {\n        scf.continue {label = \"L1\"}\n      } {\n"
            "        scf.break {label = \"L1\"}\n      }\n    } {\n    }\n"
            f"    %11 = {SHUFFLE}\n  }}\n")
    assert verdicts(body) == ["apart", "apart"]
    # a continue of the outer loop inside an inner loop (an inlined function's jump): not through ifs alone
    body = (LOOP_TOP + "    scf.if %9 {\n      scf.loop {label = \"L2\"} {\n"
            "        %10 = arith.cmp %3, %1 {pred = \"gt\"} : i1\n"
            "        scf.if %10 {\n          scf.continue {label = \"L1\"}\n        } {\n        }\n"
            "        scf.break {label = \"L2\"}\n      }\n    } {\n    }\n"
            f"    %11 = {SHUFFLE}\n  }}\n")
    assert verdicts(body) == ["all", "apart"]
