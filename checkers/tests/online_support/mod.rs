//! Every known-verdict test also checks the online form: the history replayed op by op
//! (with and without retiring keys) must end with exactly the offline verdict, and an
//! anomaly reported on the way must be one the offline check finds.

#![allow(dead_code)] // each test file uses a different subset

use distest_checkers::online::replay;
use distest_checkers::{CheckContext, Checker, History, Validity, Verdict};

/// The offline verdict of `checker` on `history`, after asserting that the online form
/// agrees with it.
pub fn checked(checker: Box<dyn Checker>, history: &History) -> Verdict {
    let ctx = CheckContext::default();
    let offline = checker.check(history, &ctx);
    let checkers = [checker];
    // Keyed histories (every client op carries a key) are judged key by key as keys
    // retire, so an invalid one must have been reported on the way.
    let keyed = history
        .ops()
        .iter()
        .all(|op| !op.is_client() || op.key.is_some());
    for (retire, tick_every) in [(false, 1), (true, 1), (true, 7)] {
        let online = replay(history, &checkers, &ctx, retire, tick_every);
        let verdict = &online.results.checkers[checkers[0].name()];
        assert_eq!(
            verdict, &offline,
            "online (retire {retire}, tick every {tick_every}) and offline verdicts differ"
        );
        if !online.anomalies.is_empty() {
            assert_eq!(
                offline.valid,
                Validity::Invalid,
                "anomalies reported online ({:?}) but the offline verdict is {}",
                online.anomalies,
                offline.summary
            );
        }
        if retire && keyed && offline.valid == Validity::Invalid {
            assert!(
                !online.anomalies.is_empty(),
                "invalid, yet no anomaly reported though every key was retired: {}",
                offline.summary
            );
        }
    }
    offline
}
