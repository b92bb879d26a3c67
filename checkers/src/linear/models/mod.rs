//! Linearizability models: the sequential specification a history is checked against.
//!
//! A model says how one op changes a state, and whether the op's observed result is
//! possible in that state. The search in `search.rs` only ever calls [`Model::step`]; all
//! JSON handling happens once, up front, in [`Model::parse`], so the hot loop works on
//! small interned values (`u32` ids) instead of `serde_json::Value`s.
//!
//! This module holds the [`Model`] trait and the list of models; each model is one file
//! here. Adding a model is one file plus one line in [`models!`]. (Elle's *consistency*
//! models are another thing: `elle::consistency`.)

pub mod cas_register;
pub mod kv;
pub mod mutex;
pub mod queue;
pub mod register;
pub mod set;

use super::hash::ValueIds;
use serde_json::Value;
use std::fmt::{self, Debug};
use std::hash::Hash;

/// What a model parses from one client op.
pub struct OpInput<'a> {
    /// The op's function (`read`, `write`, `cas`, ...).
    pub f: &'a str,
    /// The invocation's value (the argument).
    pub input: &'a Value,
    /// The `ok` completion's value, or `None` when the outcome is unknown (`info`, or no
    /// completion at all): then the op may have happened, with a result nobody saw.
    pub output: Option<&'a Value>,
}

/// A sequential specification. One small impl per file under `models/`.
pub trait Model: Clone + Send + Sync + 'static {
    /// The model's state. Kept small: it is cloned on every step of the search and
    /// stored in the search's cache.
    type State: Clone + Eq + Hash + Debug + Send;
    /// One parsed op: argument and, when known, observed result.
    type Op: Debug + Send + Sync;

    /// Whether an op without a `key` field carries its key in its value as a `[k v]`
    /// tuple (Jepsen's `independent` form), for invocation and completion alike.
    const KEY_IN_VALUE: bool = false;

    /// Whether [`Model::parse`] uses the [`Interner`]. Ops of models that do not can be
    /// parsed on several threads and merged; ids of different interners cannot. (A model
    /// that says `false` and interns anyway is caught and parsed on one thread.)
    const INTERNS_VALUES: bool = true;

    /// The state before any op (an empty register, map, set, queue; an unlocked mutex).
    fn init(&self) -> Self::State;

    /// Turns one client op into a model op. `Ok(None)` means the op constrains nothing
    /// and is dropped (a read whose result is unknown). `Err` is a one-sentence reason the
    /// op does not fit this model.
    fn parse(&self, op: &OpInput<'_>, values: &mut Interner) -> Result<Option<Self::Op>, String>;

    /// Applies `op` to `state`: the next state, or `None` when the op's observed result is
    /// impossible in `state` (a read of another value, a cas whose old value mismatches).
    /// Ops with unknown outcome are optional in a linearization, so a `None` for them
    /// means "cannot have happened here", never "the history is invalid".
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;

    /// The state as JSON, for counterexamples.
    fn show_state(&self, state: &Self::State, values: &Interner) -> Value;

    /// Bytes one state occupies, heap included; used for the memory limit.
    fn state_bytes(&self, _state: &Self::State) -> usize {
        std::mem::size_of::<Self::State>()
    }
}

/// Maps JSON values to dense `u32` ids so the search compares integers. Id 0 is `null`
/// (the initial value of a register). Values are identified by their JSON text, so `1`
/// and `1.0` are different values, as in Jepsen (Clojure's `=`).
#[derive(Clone, Debug)]
pub struct Interner {
    ids: ValueIds,
    values: Vec<Value>,
}

/// The id of `null`.
pub const NULL_ID: u32 = 0;

impl Default for Interner {
    fn default() -> Self {
        Interner::new()
    }
}

impl Interner {
    pub fn new() -> Interner {
        let mut ids = ValueIds::default();
        let (null, _) = ids.id(&Value::Null);
        debug_assert_eq!(null, NULL_ID);
        Interner {
            ids,
            values: vec![Value::Null],
        }
    }

    /// The id of `value`, assigning the next one on first sight.
    pub fn id(&mut self, value: &Value) -> u32 {
        let (id, new) = self.ids.id(value);
        if new {
            self.values.push(value.clone());
        }
        id
    }

    /// Whether no value but `null` (which every interner holds) was interned.
    pub fn is_empty(&self) -> bool {
        self.values.len() <= 1
    }

    /// The value behind `id` (`null` for an id this interner never issued).
    pub fn value(&self, id: u32) -> &Value {
        self.values.get(id as usize).unwrap_or(&Value::Null)
    }
}

/// Reads a two-element JSON array, `[a b]` (Jepsen's cas `[old new]`, tuples `[k v]`).
pub fn pair_of(value: &Value) -> Option<(&Value, &Value)> {
    match value.as_array().map(Vec::as_slice) {
        Some([a, b]) => Some((a, b)),
        _ => None,
    }
}

/// The standard message for an `f` a model does not know.
pub fn unknown_f(model: &str, f: &str, valid: &str) -> String {
    format!("the {model} model has no operation {f:?}; its operations are {valid}")
}

/// Something to run with a concrete model type (the search is generic, so each model
/// gets its own monomorphized, fast copy).
pub(crate) trait ModelVisitor {
    type Output;
    fn visit<M: Model>(self, model: &M) -> Self::Output;
}

macro_rules! models {
    ($($variant:ident => $name:literal, $ty:ty;)*) => {
        /// The models the linearizability checker knows, by `--model` name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ModelKind {
            $($variant),*
        }

        impl ModelKind {
            /// Every `--model` name, in the order `--help` lists them.
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            pub fn from_name(name: &str) -> Option<ModelKind> {
                match name {
                    $($name => Some(ModelKind::$variant),)*
                    _ => None,
                }
            }

            pub fn name(self) -> &'static str {
                match self {
                    $(ModelKind::$variant => $name),*
                }
            }

            pub(crate) fn visit<V: ModelVisitor>(self, visitor: V) -> V::Output {
                match self {
                    $(ModelKind::$variant => visitor.visit(&<$ty>::default())),*
                }
            }
        }
    };
}

models! {
    Register => "register", register::Register;
    CasRegister => "cas-register", cas_register::CasRegister;
    Kv => "kv", kv::Kv;
    Set => "set", set::Set;
    Queue => "queue", queue::Queue;
    Mutex => "mutex", mutex::Mutex;
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn interner_gives_null_id_zero_and_equal_values_equal_ids() {
        let mut v = Interner::new();
        assert_eq!(v.id(&Value::Null), NULL_ID);
        let a = v.id(&json!(5));
        assert_eq!(v.id(&json!(5)), a);
        assert_ne!(v.id(&json!("5")), a);
        assert_eq!(v.value(a), &json!(5));
    }

    #[test]
    fn every_model_name_round_trips() {
        for name in ModelKind::NAMES {
            assert_eq!(ModelKind::from_name(name).map(ModelKind::name), Some(*name));
        }
        assert_eq!(ModelKind::from_name("cas_register"), None);
    }
}
