//! Differential tests: the `linearizable` checker and porcupine-rs must agree on thousands
//! of random histories (cas-register and kv), valid by construction or perturbed, with
//! `info` ops, crashed processes and ops that never complete.
//!
//! The conversion to porcupine's operations (`linearizable_support/porcupine.rs`) is
//! written independently of the checker's own (`prepare.rs`), so the test also checks how
//! distest reads Jepsen's semantics: `fail` dropped, `info` returns at +infinity, unknown
//! reads dropped.

mod linearizable_support;

use distest_checkers::linear::{check_history, ModelKind};
use distest_checkers::{CheckContext, History, Validity};
use linearizable_support::gen::{perturb, simulate, GenConfig};
use linearizable_support::porcupine::{
    kv_op, register_op, to_porcupine, PorcupineKv, PorcupineRegister,
};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;

/// The offline verdict, after `online_support` asserted that the online form agrees.
fn distest_verdict(history: &History, model: ModelKind) -> Validity {
    let offline = check_history(history, model, &CheckContext::default());
    let checker = Box::new(distest_checkers::linear::Linearizable::new(model));
    assert_eq!(
        linearizable_support::online_support::checked(checker, history),
        offline
    );
    offline.valid
}

/// Generates a history from `seed`, perturbed or not, and compares both checkers.
fn compare(seed: u64, cfg: GenConfig, perturbed: bool) -> Result<(), TestCaseError> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut ops = simulate(&mut rng, &cfg);
    if perturbed {
        perturb(&mut rng, &mut ops, &cfg);
    }
    let history = History::new(ops).expect("simulated histories are well formed");
    let (ours, theirs) = if cfg.kv {
        let p = porcupine_rs::check_operations(&to_porcupine::<PorcupineKv>(&history, kv_op));
        (distest_verdict(&history, ModelKind::Kv), p)
    } else {
        let p = porcupine_rs::check_operations(&to_porcupine::<PorcupineRegister>(
            &history,
            register_op,
        ));
        (distest_verdict(&history, ModelKind::CasRegister), p)
    };
    let expected = if theirs {
        Validity::Valid
    } else {
        Validity::Invalid
    };
    prop_assert_eq!(
        ours,
        expected,
        "seed {} cfg {:?} perturbed {}",
        seed,
        cfg,
        perturbed
    );
    if !perturbed {
        prop_assert_eq!(
            ours,
            Validity::Valid,
            "a simulated history must be linearizable"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn cas_register_verdicts_match_porcupine(
        seed in any::<u64>(),
        processes in 1usize..6,
        ops in 1usize..40,
        values in 1u64..5,
        p_info in prop_oneof![Just(0.0), 0.0f64..0.3],
        perturbed in any::<bool>(),
    ) {
        let cfg = GenConfig { processes, ops, values, keys: 0, p_info, kv: false };
        compare(seed, cfg, perturbed)?;
    }

    // Shorter and with fewer crashed ops than the register cases: every crashed append
    // may land anywhere after its call, in any order with the others, and each order is
    // a different string, so a few kv histories of 40 ops with 30% info ops take both
    // checkers seconds and gigabytes (the exponential case of every exact checker; about
    // 1 in 10,000 draws). With these bounds the slowest of 100,000 draws took 0.13 s.
    #[test]
    fn keyed_kv_verdicts_match_porcupine(
        seed in any::<u64>(),
        processes in 1usize..6,
        ops in 1usize..30,
        keys in 1u64..4,
        p_info in 0.0f64..0.2,
        perturbed in any::<bool>(),
    ) {
        let cfg = GenConfig { processes, ops, values: 3, keys, p_info, kv: true };
        compare(seed, cfg, perturbed)?;
    }
}

#[test]
fn perturbation_finds_invalid_histories_often_enough_to_matter() {
    // Guards the differential test against a generator that only makes valid histories.
    let cfg = GenConfig {
        processes: 3,
        ops: 20,
        values: 3,
        keys: 0,
        p_info: 0.1,
        kv: false,
    };
    let invalid = (0..200u64)
        .filter(|&seed| {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut ops = simulate(&mut rng, &cfg);
            perturb(&mut rng, &mut ops, &cfg);
            let h = History::new(ops).unwrap();
            distest_verdict(&h, ModelKind::CasRegister) == Validity::Invalid
        })
        .count();
    assert!(
        invalid >= 40,
        "only {invalid} of 200 perturbed histories were invalid"
    );
}

#[test]
fn long_keyed_kv_histories_split_across_threads_match_porcupine() {
    // Long enough (> 32k positions) that the checker locates keys in parallel chunks.
    let cfg = GenConfig {
        processes: 12,
        ops: 20_000,
        values: 4,
        keys: 40,
        p_info: 0.02,
        kv: true,
    };
    for seed in 0..4u64 {
        compare(seed, cfg, seed % 2 == 1).unwrap();
    }
}
