//! Retention policies' place in a collection pass.

use super::Registry;
use crate::error::Result;
use crate::gc::GcReport;

impl Registry {
    /// The retention phase of a pass: deletes the tags policies no longer
    /// keep. Does nothing yet — the policies branch replaces this file with
    /// the real phase (and the integrator wires it).
    pub(crate) async fn apply_retention(&self, dry_run: bool, report: &mut GcReport) -> Result<()> {
        let _ = (dry_run, report);
        Ok(())
    }
}
