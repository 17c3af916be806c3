//! `duet dialog validate` and `duet dialog test`: the project checked for consistency as Rasa
//! checks it ([`validate`]), its test stories evaluated as `rasa test` evaluates them
//! ([`stories`]), held-out story prediction ([`heldout`]) and NLU cross-validation ([`nlu`]).

mod heldout;
mod nlu;
mod stories;
mod validate;

pub use heldout::{HeldOut, policy_held_out};
pub use nlu::{NluCrossValidation, nlu_cross_validation, nlu_report};
pub use stories::{StoryResult, TestOptions, report, run_tests, run_tests_with};
pub use validate::{Validation, validate};

use crate::assistant::{Assistant, expand_stories};
use crate::project::Project;

/// Trains an assistant after validating; stops on validation errors.
pub fn train_checked(p: &Project) -> crate::Result<(Assistant, Validation)> {
    let v = validate(p);
    if !v.errors.is_empty() {
        return Err(crate::Error::Invalid(v.errors));
    }
    let _ = expand_stories(p);
    Ok((Assistant::train(p)?, v))
}
