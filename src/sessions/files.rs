//! A session's summary of files changed ([`crate::changes`]): taken on demand while it runs,
//! and once when it ends, kept with its recording (event `f`, just before the exit status)
//! and counted in its `session.end` audit event. The paths are the session's strings: its
//! secrets are redacted from them before they are kept or shown.

use super::Session;
use crate::changes::{Summary, Taken};
use crate::record::format as recfmt;

impl Session {
    /// What the session has created, changed and deleted in its workspace since its command
    /// started (a walk now, compared with the one taken before).
    pub fn files(&self, taken: Taken) -> Summary {
        match &self.files {
            Ok(watch) => {
                let name = |p: &[u8]| {
                    crate::changes::bounded(self.egress.redacted(&String::from_utf8_lossy(p)))
                };
                watch.summary(taken, &name)
            }
            Err(why) => Summary::unavailable(
                taken,
                "",
                &self.created,
                &crate::audit::now_rfc3339(),
                format!("no walk of the workspace was taken before the command started: {why}"),
            ),
        }
    }

    /// The summary at the session's end, put on its recording; None when there was no
    /// walk to compare with (its recording says why).
    pub(super) fn final_files(&self) -> Option<Summary> {
        let summary = self.files(Taken::End);
        if !self.recording_id().is_empty() {
            match serde_json::to_vec(&summary) {
                // The session is over: a recording that cannot take it is already said.
                Ok(json) => {
                    let _ = self.record(recfmt::FILES, &json);
                }
                Err(e) => eprintln!("cordon: session {}: its files summary: {e}", self.id),
            }
        }
        self.files.is_ok().then_some(summary)
    }
}
