//! Which steps of a job's plan may run now: the pure part of the worker.
//!
//! A plan lists each step's dependencies (`PlannedStep::after`); every step
//! whose dependencies succeeded may start, and the steps of one plan run
//! concurrently as far as that allows. The first attempts of the steps that
//! can start at once are journaled with the plan ([`roots`]), and those one
//! success makes ready with that success ([`Sched::then_start`]): one store
//! write fewer per step. Removals never are: each journals its own start in
//! the transaction that checks its contract still owns what it removes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::engine::claims::{self, Claim};
use crate::engine::store::{PlannedStep, StepRecord, StepState};

/// The steps of a fresh plan that can start at once (no dependencies), by
/// index: their first attempts are journaled with the plan. Removals are
/// not: each journals its own start with its ownership check.
pub fn roots(planned: &[PlannedStep]) -> Vec<u32> {
    planned
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.action.removes())
        .filter(|(i, s)| match &s.after {
            Some(after) => after.is_empty(),
            None => *i == 0,
        })
        .map(|(i, _)| i as u32)
        .collect()
}

/// Every backend name a plan's steps touch: its job's contract must own
/// each before the plan is stored.
pub fn owned_names(planned: &[PlannedStep]) -> Vec<Claim> {
    let mut names: Vec<Claim> = planned.iter().flat_map(step_names).collect();
    names.sort();
    names.dedup();
    names
}

/// The backend names one step touches.
pub fn step_names(step: &PlannedStep) -> Vec<Claim> {
    claims::of_resource(&step.resource.kind, &step.resource.key, &step.resource.spec)
        .names
        .into_iter()
        .collect()
}

/// A stored plan the scheduler cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("step {step} waits for `{waits_for}`, which is not an earlier step of its plan")]
pub struct BadPlan {
    pub step: String,
    pub waits_for: String,
}

/// Each step's dependencies as positions in `steps`. A step without recorded
/// dependencies (a plan stored before they were) depends on the previous
/// one. A dependency must come earlier in the plan, which rules out cycles:
/// the scheduler can always make progress.
pub fn dependencies(steps: &[StepRecord]) -> Result<Vec<Vec<usize>>, BadPlan> {
    let pos: BTreeMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.step.id.as_str(), i))
        .collect();
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| match &s.step.after {
            None => Ok(if i == 0 { Vec::new() } else { vec![i - 1] }),
            Some(after) => after
                .iter()
                .map(|id| match pos.get(id.as_str()) {
                    Some(&p) if p < i => Ok(p),
                    _ => Err(BadPlan {
                        step: s.step.id.clone(),
                        waits_for: id.clone(),
                    }),
                })
                .collect(),
        })
        .collect()
}

/// Where a step of the plan stands in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Succeeded (in this run or before).
    Done,
    /// Not started in this run.
    Pending,
    /// Its first attempt was journaled with the plan or with the success of
    /// the step before it; not called yet.
    PreStarted,
    Running,
    /// Failed for good in this run.
    Failed,
}

/// The run's view of its plan, shared by the scheduler and the steps it runs
/// (all in the job's task: the lock is never held across an await). Pure:
/// which steps may start, and which first attempts to journal with a
/// success; the worker does the I/O.
pub struct Sched<'a> {
    pub steps: &'a [StepRecord],
    deps: &'a [Vec<usize>],
    slots: Mutex<Vec<Slot>>,
}

impl<'a> Sched<'a> {
    /// Every step pending but those succeeded before (a resumed job), and
    /// `prestarted`: the first attempts journaled with the plan.
    pub fn new(steps: &'a [StepRecord], deps: &'a [Vec<usize>], prestarted: &[u32]) -> Self {
        let mut slots: Vec<Slot> = steps
            .iter()
            .map(|s| match s.state {
                StepState::Succeeded => Slot::Done,
                _ => Slot::Pending,
            })
            .collect();
        for &i in prestarted {
            slots[i as usize] = Slot::PreStarted;
        }
        Sched {
            steps,
            deps,
            slots: Mutex::new(slots),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn slot(&self, pos: usize) -> Slot {
        self.slots()[pos]
    }
    pub fn set(&self, pos: usize, slot: Slot) {
        self.slots()[pos] = slot;
    }
    pub fn all_done(&self) -> bool {
        self.slots().iter().all(|s| *s == Slot::Done)
    }
    /// Steps not running whose dependencies all succeeded, in plan order.
    pub fn ready(&self) -> Vec<usize> {
        let slots = self.slots();
        (0..slots.len())
            .filter(|&p| matches!(slots[p], Slot::Pending | Slot::PreStarted))
            .filter(|&p| self.deps[p].iter().all(|&d| slots[d] == Slot::Done))
            .collect()
    }
    /// The steps whose first attempts to journal with `pos`'s success: those
    /// its success makes ready, but only when `pos` is the one step running
    /// and no shutdown is under way (`stopping`). Then nothing concurrent
    /// (another success, a failure) can change the picture before the
    /// scheduler starts them; with other steps running, each start is its
    /// own write. The steps are marked pre-started at once.
    pub fn then_start(&self, pos: usize, stopping: bool) -> Vec<(u32, u32)> {
        if stopping {
            return Vec::new();
        }
        let mut slots = self.slots();
        let others_busy = slots
            .iter()
            .enumerate()
            .any(|(p, s)| p != pos && matches!(s, Slot::Running | Slot::PreStarted | Slot::Failed));
        if others_busy {
            return Vec::new();
        }
        let done = |d: usize| d == pos || slots[d] == Slot::Done;
        let ready: Vec<usize> = (0..slots.len())
            .filter(|&p| p != pos && slots[p] == Slot::Pending)
            // A removal journals its own start, with its ownership check.
            .filter(|&p| !self.steps[p].step.action.removes())
            .filter(|&p| self.deps[p].iter().all(|&d| done(d)))
            .collect();
        ready
            .into_iter()
            .map(|p| {
                slots[p] = Slot::PreStarted;
                let rec = &self.steps[p];
                (rec.index, rec.attempts + 1)
            })
            .collect()
    }
    /// Undoes [`Sched::then_start`] when the success it rode on was not
    /// recorded (the run stops anyway; this keeps the view honest).
    pub fn unstart(&self, next: &[(u32, u32)]) {
        let mut slots = self.slots();
        for &(index, _) in next {
            if let Some(p) = self.steps.iter().position(|s| s.index == index)
                && slots[p] == Slot::PreStarted
            {
                slots[p] = Slot::Pending;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::store::Action;
    use hostwright_adapter::Resource;

    fn step(id: &str, action: Action, after: Option<&[&str]>) -> PlannedStep {
        PlannedStep {
            from: None,
            id: id.into(),
            adapter: "x".into(),
            action,
            resource: Resource {
                kind: "webspace".into(),
                key: id.into(),
                contract_id: "C-1".into(),
                spec: serde_json::json!({}),
            },
            after: after.map(|a| a.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn records(steps: Vec<PlannedStep>) -> Vec<StepRecord> {
        steps
            .into_iter()
            .enumerate()
            .map(|(i, step)| StepRecord {
                index: i as u32,
                step,
                state: StepState::Pending,
                attempts: 0,
                last_error: None,
                facts: None,
            })
            .collect()
    }

    /// zone and space at once; the vhost after both; the FTP account after
    /// the space alone.
    fn plan() -> Vec<StepRecord> {
        records(vec![
            step("zone", Action::Create, Some(&[])),
            step("space", Action::Create, Some(&[])),
            step("vhost", Action::Create, Some(&["zone", "space"])),
            step("ftp", Action::Create, Some(&["space"])),
        ])
    }

    #[test]
    fn independent_steps_are_ready_together_and_dependents_wait() {
        let steps = plan();
        let deps = dependencies(&steps).unwrap();
        assert_eq!(deps, [vec![], vec![], vec![0, 1], vec![1]]);
        let s = Sched::new(&steps, &deps, &[]);
        assert_eq!(s.ready(), [0, 1]);
        s.set(0, Slot::Running);
        s.set(1, Slot::Done);
        assert_eq!(s.ready(), [3], "the FTP account needs only the space");
        s.set(0, Slot::Done);
        assert_eq!(s.ready(), [2, 3]);
        s.set(2, Slot::Done);
        s.set(3, Slot::Done);
        assert!(s.all_done());
    }

    #[test]
    fn a_success_prestarts_what_it_alone_makes_ready_unless_others_run_or_we_stop() {
        let steps = plan();
        let deps = dependencies(&steps).unwrap();
        let s = Sched::new(&steps, &deps, &[0, 1]);
        // The zone succeeds while the space still runs: nothing rides along.
        s.set(1, Slot::Running);
        assert!(s.then_start(0, false).is_empty());
        s.set(0, Slot::Done);
        // The space is now the one step running: its success starts the
        // vhost and the FTP account in the same write.
        assert_eq!(s.then_start(1, false), [(2, 1), (3, 1)]);
        assert_eq!(s.slot(2), Slot::PreStarted);
        s.unstart(&[(2, 1), (3, 1)]);
        assert_eq!(s.slot(2), Slot::Pending);
        assert!(s.then_start(1, true).is_empty(), "not at shutdown");
    }

    #[test]
    fn removals_are_never_prestarted() {
        let steps = records(vec![
            step("del-vhost", Action::Delete, Some(&[])),
            step("del-space", Action::Delete, Some(&["del-vhost"])),
        ]);
        let planned: Vec<PlannedStep> = steps.iter().map(|r| r.step.clone()).collect();
        assert!(roots(&planned).is_empty());
        let deps = dependencies(&steps).unwrap();
        let s = Sched::new(&steps, &deps, &[]);
        s.set(0, Slot::Running);
        assert!(s.then_start(0, false).is_empty());
    }

    #[test]
    fn old_plans_run_in_order_and_bad_plans_are_named() {
        let steps = records(vec![
            step("a", Action::Create, None),
            step("b", Action::Create, None),
        ]);
        assert_eq!(dependencies(&steps).unwrap(), [vec![], vec![0]]);
        let bad = records(vec![
            step("a", Action::Create, Some(&["b"])),
            step("b", Action::Create, Some(&[])),
        ]);
        assert_eq!(
            dependencies(&bad).unwrap_err(),
            BadPlan {
                step: "a".into(),
                waits_for: "b".into()
            }
        );
    }
}
