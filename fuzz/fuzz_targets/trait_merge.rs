//! The one trait-merge function (`convene_core::merge`): arbitrary stored
//! traits and arbitrary operations. A write applies whole or not at all, a
//! write of plain values is idempotent, and nothing panics.
#![no_main]

use convene_core::field::FieldRegistry;
use convene_core::merge::{TraitOp, apply_traits};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    // The input is `{"before": {...}, "ops": {...}}`; anything else is not interesting.
    let Ok(Value::Object(mut input)) = serde_json::from_slice::<Value>(data) else { return };
    let (Some(Value::Object(before)), Some(Value::Object(ops))) = (input.remove("before"), input.remove("ops")) else {
        return;
    };
    let Ok(ops) = TraitOp::parse_map(&ops) else { return };
    let mut registry = FieldRegistry::builtin_contact();
    let mut traits: Map<String, Value> = before.clone();
    match apply_traits(&mut traits, &ops, &mut registry) {
        Err(_) => assert_eq!(traits, before, "a refused write changed the traits"),
        Ok(_) => {
            let plain = ops.iter().all(|(_, op)| matches!(op, TraitOp::Set(_) | TraitOp::Unset | TraitOp::SetOnce(_)));
            if plain {
                let once = traits.clone();
                apply_traits(&mut traits, &ops, &mut registry).expect("an accepted write applies again");
                assert_eq!(traits, once, "a write of plain values is not idempotent");
            }
        }
    }
});
