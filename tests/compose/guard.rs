//! Restoring what a fault test broke, pass or fail: the guard runs its
//! closure when dropped, also while a failed assertion unwinds, so the next
//! test finds the stack whole.

type Undo = Box<dyn FnOnce() -> Result<(), String>>;

pub struct Restore {
    what: &'static str,
    undo: Option<Undo>,
}

impl Restore {
    /// `undo` reports failure as `Err` instead of panicking: it may run
    /// while the test is already unwinding.
    pub fn new(what: &'static str, undo: impl FnOnce() -> Result<(), String> + 'static) -> Restore {
        Restore {
            what,
            undo: Some(Box::new(undo)),
        }
    }

    /// Restores now (the normal path); a failure to restore fails the test.
    pub fn restore(mut self) {
        if let Some(f) = self.undo.take()
            && let Err(e) = f()
        {
            panic!("restoring `{}` failed: {e}", self.what);
        }
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(f) = self.undo.take() {
            eprintln!("restoring after a failure: {}", self.what);
            if let Err(e) = f() {
                eprintln!("restoring `{}` failed: {e}", self.what);
            }
        }
    }
}
