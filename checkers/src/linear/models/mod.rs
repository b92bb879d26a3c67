//! The list of models. Adding a model is one file here plus one line in [`models!`].

pub mod cas_register;
pub mod kv;
pub mod mutex;
pub mod queue;
pub mod register;
pub mod set;

use super::model::Model;
use std::fmt;

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

    #[test]
    fn every_model_name_round_trips() {
        for name in ModelKind::NAMES {
            assert_eq!(ModelKind::from_name(name).map(ModelKind::name), Some(*name));
        }
        assert_eq!(ModelKind::from_name("cas_register"), None);
    }
}
