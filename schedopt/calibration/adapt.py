r"""The plan's last pilot, chosen from the first two (``schedopt pilots --first-logs``).

The plan (:mod:`schedopt.calibration.plan`) trains a long pilot at the guess and two short ones at x 0.25 and x 4.
The x 4 pilot ends at 0.2 of the budget's updates, long before the long one (0.6), and it is the first to tell
whether the guess was far too low: where it is still more than 5 % ahead of the long pilot at the last update both
are at their peak (``fit``'s top-pilot note, :func:`~schedopt.calibration._checks._top_pilot_ahead`), the best
peak may lie above the plan's range, which the design never passes. So the x 0.25 pilot can wait for it: train the
long pilot and the x 4 one side by side; when the x 4 one has ended, the last pilot is the x 0.25 one as planned,
or, where the x 4 one is still far ahead, one at x 8 (twice the top rate, as long) instead. The same budget, and no
more wall time on two devices (0.2 + 0.2 of the budget's updates within the long pilot's 0.6).

Measured on the real tasks' cached pilots without training (``benchmarks/adaptive_pilots.py``, 28 pilot sets: the
sixteen tasks' plans and twelve plans around a guess four times too low): it traded on 8 sets, and the default
design's plateau, priced on each task's measured WSD curve, lost 1.091 nats to tuned WSD summed over the sets
instead of the plan's 1.614, none worse by more than 0.02; the median over sets of the fitted model's median
prediction error 5.0 % instead of 5.3 %.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from schedopt.calibration._checks import _top_pilot_ahead, _top_pilot_lead
from schedopt.calibration.pilots import PilotRun
from schedopt.calibration.plan import COOLDOWN, PilotPlan, plan_pilots
from schedopt.errors import ProblemError

__all__ = ["LastPilot", "last_pilot"]

FIELD = "--first-logs"


@dataclass(frozen=True)
class LastPilot:
    """The plan's last pilot and why: :attr:`traded` where it is not the plan's x 0.25 one (``instead_of``);
    ``lead``: how far the top pilot was ahead of the long one (a fraction of its loss) at ``step``, or ``None``
    where they share no step at their peak past twice the warmup."""

    pilot: PilotPlan
    instead_of: PilotPlan
    lead: float | None
    step: int | None

    @property
    def traded(self) -> bool:
        """Whether the last pilot replaces the plan's x 0.25 one."""
        return self.pilot is not self.instead_of


def _matching(run: PilotRun, plan: PilotPlan) -> bool:
    """Whether ``run`` ran at ``plan``'s peak (to the four digits the plan writes)."""
    return math.isclose(run.peak_learning_rate, plan.peak, rel_tol=1e-3)


def last_pilot(horizon: int, budget: float, peak: float, warmup: int, first: Sequence[PilotRun]) -> LastPilot:
    """The plan's last pilot, given ``first``: the logs of its long pilot (as far as it got) and its top pilot.

    Raises:
        ProblemError: (field ``--first-logs``) not two logs, a log at neither pilot's peak, the top pilot's log
            before the end of its peak, or the long pilot's log before that update.
    """
    long_plan, low_plan, top_plan = plan_pilots(horizon, budget, peak, warmup)
    if len(first) != 2:
        raise ProblemError(
            f"`{FIELD}` takes two logs, the long pilot's and the top pilot's, got {len(first)}", field=FIELD
        )
    by_role = {}
    for run in first:
        role = next((p for p in (long_plan, top_plan) if _matching(run, p)), None)
        if role is None or role.name in by_role:
            raise ProblemError(
                f"`{FIELD}`: {run.name} ran at peak {run.peak_learning_rate:g}; give the logs of the plan's long "
                f"pilot ({long_plan.peak:g}) and top pilot ({top_plan.peak:g}) for --peak {peak:g}",
                field=FIELD,
            )
        by_role[role.name] = run
    long_run, top_run = by_role[long_plan.name], by_role[top_plan.name]
    until = int(round((1.0 - COOLDOWN) * top_plan.steps))  # the top pilot's last update at its peak
    for run, what in ((top_run, "the top pilot"), (long_run, "the long pilot")):
        if run.loss_steps[-1] < until:
            raise ProblemError(
                f"`{FIELD}`: {run.name} ({what}) ends at update {int(run.loss_steps[-1])}, before update {until}, "
                "where the top pilot's cooldown starts: let it train that far",
                field=FIELD,
            )
    measured = _top_pilot_lead([long_run, top_run])
    ahead = _top_pilot_ahead([long_run, top_run])
    # the x 8 pilot is the one `schedopt pilots --above 1` writes: the same file, name and schedule
    pilot = low_plan if ahead is None else plan_pilots(horizon, budget, peak, warmup, above=1)[3]
    return LastPilot(
        pilot=pilot,
        instead_of=low_plan,
        lead=None if measured is None else measured[3],
        step=None if measured is None else measured[2],
    )
