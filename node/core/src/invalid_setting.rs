//! A governed setting (a gate, a health threshold, the synthetic model's knobs) outside what
//! makes sense. Config readers turn it into an error naming the config key.

/// `setting` is the field at fault (`min_quality`, `breach_samples`, ...); `problem` says what
/// is wrong with its value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{setting} {problem}")]
pub struct InvalidSetting {
    pub setting: &'static str,
    pub problem: String,
}

impl InvalidSetting {
    pub fn new(setting: &'static str, problem: impl Into<String>) -> Self {
        InvalidSetting {
            setting,
            problem: problem.into(),
        }
    }
}
